package lxcstart

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
)

func TestSpec(t *testing.T) {
	type kv struct{ field, key, value string }
	for _, tc := range []struct {
		name string
		add  []kv
		want []string // the record's NUL-terminated strings
		// errField, when set, is the field the error names
		errField string
	}{
		{name: "empty", want: []string{SpecMagic, SpecEnd}},
		{
			name: "pairs in order",
			add:  []kv{{"process.cwd", "cwd", "/srv"}, {"process.env[0]", "env", "X=a b\nc=d"}, {"process.args[0]", "arg", ""}},
			want: []string{SpecMagic, "cwd", "/srv", "env", "X=a b\nc=d", "arg", "", SpecEnd},
		},
		{
			name:     "NUL refused, naming the field",
			add:      []kv{{"process.args[0]", "arg", "sh"}, {"process.args[1]", "arg", "a\x00b"}},
			errField: "process.args[1]",
		},
		{
			name:     "the first error counts",
			add:      []kv{{"process.cwd", "cwd", "/\x00"}, {"process.env[0]", "env", "\x00"}},
			errField: "process.cwd",
		},
		{
			name:     "larger than the helper reads",
			add:      []kv{{"process.args[0]", "arg", strings.Repeat("x", SpecMax)}},
			errField: "process",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSpec()
			for _, a := range tc.add {
				s.Add(a.field, a.key, a.value)
			}
			rec, err := s.Encode()
			if tc.errField != "" {
				var fe *runtime.FieldError
				if !errors.As(err, &fe) || fe.Field != tc.errField || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want an InvalidArgument FieldError for %s", err, tc.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rec) == 0 || rec[len(rec)-1] != 0 {
				t.Fatalf("record %q does not end in NUL", rec)
			}
			if got := strings.Split(string(rec[:len(rec)-1]), "\x00"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("record\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestSendSpec(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec, _ := NewSpec().Encode()
	go SendSpec(w, rec)
	got := make([]byte, 0, len(rec))
	buf := make([]byte, 64)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != string(rec) {
		t.Errorf("read %q, want %q and end of file", got, rec)
	}
}

func TestArgs(t *testing.T) {
	got := Args("exec", "ct", "/var/lib/lxc")
	want := []string{"exec", "ct", "/var/lib/lxc", "--spec-fd", "6"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Args = %q, want %q", got, want)
	}
}
