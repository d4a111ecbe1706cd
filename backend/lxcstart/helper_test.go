package lxcstart

import (
	"os"
	"path/filepath"
	"testing"
)

func TestExecutable(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		path string
		want bool
	}{
		{"executable file", write("x", 0o755), true},
		{"owner's execute bit only", write("u", 0o700), true},
		{"no execute bit", write("plain", 0o644), false},
		{"missing", filepath.Join(dir, "missing"), false},
		{"directory", dir, false},
	} {
		if got := Executable(tc.path); got != tc.want {
			t.Errorf("%s: Executable(%s) = %v, want %v", tc.name, tc.path, got, tc.want)
		}
	}
}
