package main

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tarOf(t *testing.T, entries ...*tar.Header) string {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range entries {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = "data of " + h.Name
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "a.tar")
	os.WriteFile(p, b.Bytes(), 0o600)
	return p
}

// untar keeps every write inside the destination: a symlink to the outside cannot be
// written through, and .. entries are dropped.
func TestUntarConfined(t *testing.T) {
	outside := t.TempDir()
	dest := filepath.Join(t.TempDir(), "root")
	good := tarOf(t,
		&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "bin/app", Typeflag: tar.TypeReg, Mode: 0o4755},
		&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "app", Mode: 0o777},
		&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		&tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644},
	)
	if err := untar(good, dest); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "bin/sh")); err != nil || string(b) != "data of bin/app" {
		t.Errorf("bin/sh: %q %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(dest, "bin/app")); fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("setuid lost: %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(dest, "tmp")); fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("sticky bit lost: %v", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dest), "escape")); !os.IsNotExist(err) {
		t.Errorf("a ../ entry was written outside: %v", err)
	}
	evil := tarOf(t,
		&tar.Header{Name: "out", Typeflag: tar.TypeSymlink, Linkname: outside, Mode: 0o777},
		&tar.Header{Name: "out/pwned", Typeflag: tar.TypeReg, Mode: 0o644},
	)
	if err := untar(evil, dest); err == nil {
		t.Error("a write through a symlink to the outside succeeded")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside: %v", ents)
	}
}

func TestLookPath(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/tool"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/data"), []byte("x"), 0o644)
	if p, err := lookPath(root, "tool", []string{"PATH=/bin:/usr/bin"}); err != nil || p != "/usr/bin/tool" {
		t.Errorf("tool: %q %v", p, err)
	}
	if _, err := lookPath(root, "data", []string{"PATH=/usr/bin"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("a file that is not executable: %v", err)
	}
	if p, _ := lookPath(root, "/abs/prog", nil); p != "/abs/prog" {
		t.Errorf("absolute: %q", p)
	}
}
