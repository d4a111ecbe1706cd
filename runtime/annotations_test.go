package runtime

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestCheckAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name    string
		allowed []string
		ann     map[string]string
		errMsg  string // "" when allowed
	}{
		{name: "no annotation", ann: nil},
		{name: "others are not lxcri's", ann: map[string]string{"io.kubernetes.cri.sandbox-id": "x", "org.example": "y"}},
		{name: "refused by default", ann: map[string]string{BackendAnnotation: "crun"},
			errMsg: `annotation "io.lxcri.backend" is not allowed: the operator allows it with allowed_annotations in /etc/lxcri/config.toml`},
		{name: "allowed by name", allowed: []string{BackendAnnotation}, ann: map[string]string{BackendAnnotation: "crun"}},
		{name: "allowed by prefix", allowed: []string{"io.lxcri.*"}, ann: map[string]string{BackendAnnotation: "crun"}},
		{name: "allowed by catch-all", allowed: []string{"*"}, ann: map[string]string{BackendAnnotation: "crun"}},
		{name: "another name allowed", allowed: []string{"io.lxcri.other"}, ann: map[string]string{BackendAnnotation: "crun"},
			errMsg: `annotation "io.lxcri.backend" is not allowed`},
		{name: "prefix is not a name", allowed: []string{"io.lxcri.back"}, ann: map[string]string{BackendAnnotation: "crun"},
			errMsg: `annotation "io.lxcri.backend" is not allowed`},
		{name: "unknown but allowed", allowed: []string{"io.lxcri.*"}, ann: map[string]string{"io.lxcri.backendd": "crun"},
			errMsg: `unknown annotation "io.lxcri.backendd": lxcri knows io.lxcri.backend`},
		{name: "refused before unknown", ann: map[string]string{"io.lxcri.x": "1"},
			errMsg: `annotation "io.lxcri.x" is not allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.AllowedAnnotations = tc.allowed
			err := c.CheckAnnotations(tc.ann)
			if tc.errMsg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.errMsg) {
				t.Fatalf("got %v, want InvalidArgument saying %q", err, tc.errMsg)
			}
		})
	}
}

func TestAllowedAnnotationsConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers []string
		want   []string
		errMsg string
	}{
		{name: "default none", want: nil},
		{name: "names and prefixes", layers: []string{`allowed_annotations = ["io.lxcri.backend", "io.lxcri.*", "*"]`}, want: []string{"io.lxcri.backend", "io.lxcri.*", "*"}},
		{name: "later layer replaces", layers: []string{`allowed_annotations = ["io.lxcri.*"]`, `allowed_annotations = []`}, want: []string{}},
		{name: "kept when a later layer does not set it", layers: []string{`allowed_annotations = ["io.lxcri.*"]`, `backend = "lxc"`}, want: []string{"io.lxcri.*"}},
		{name: "star inside", layers: []string{`allowed_annotations = ["io.*.backend"]`}, errMsg: `allowed_annotations in layer0: entry "io.*.backend"`},
		{name: "empty entry", layers: []string{`allowed_annotations = [""]`}, errMsg: `entry ""`},
		{name: "newline", layers: []string{`allowed_annotations = ["io.lxcri.backend\n"]`}, errMsg: `entry "io.lxcri.backend\n"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			var err error
			for i, l := range tc.layers {
				if err = c.Merge("layer"+string(rune('0'+i)), []byte(l)); err != nil {
					break
				}
			}
			if tc.errMsg != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.errMsg) {
					t.Fatalf("got %v, want InvalidArgument saying %q", err, tc.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(c.AllowedAnnotations, ",") != strings.Join(tc.want, ",") {
				t.Errorf("allowed_annotations %q, want %q", c.AllowedAnnotations, tc.want)
			}
		})
	}
	c := DefaultConfig()
	c.AllowedAnnotations = []string{"io.lxcri.*"}
	cc := c.Clone()
	cc.AllowedAnnotations[0] = "x"
	if c.AllowedAnnotations[0] != "io.lxcri.*" {
		t.Errorf("Clone shares allowed_annotations")
	}
}
