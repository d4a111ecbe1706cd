package runtime

import (
	"reflect"
	"testing"
)

func TestRedact(t *testing.T) {
	type inner struct {
		Token string `lxcri:"secret"`
		Node  string
	}
	type outer struct {
		Inner  inner
		Ptr    *inner
		Secret []byte `lxcri:"secret"`
		URL    string
	}
	orig := &outer{Inner: inner{"s1", "n1"}, Ptr: &inner{"s2", "n2"}, Secret: []byte("s3"), URL: "u"}
	got := *orig
	redact(reflect.ValueOf(&got).Elem())
	if got.Inner.Token != "" || got.Ptr.Token != "" || got.Secret != nil {
		t.Errorf("secrets left: %+v %+v", got, got.Ptr)
	}
	if got.Inner.Node != "n1" || got.Ptr.Node != "n2" || got.URL != "u" {
		t.Errorf("non-secrets lost: %+v %+v", got, got.Ptr)
	}
	if orig.Ptr.Token != "s2" {
		t.Error("the original's secret was zeroed through a shared pointer")
	}
	c := DefaultConfig()
	c.AllowedAnnotations = []string{"io.lxcri.backend"}
	if r := c.Redacted(); !reflect.DeepEqual(r, c) {
		t.Errorf("a configuration without secrets changed: %+v", r)
	}
}
