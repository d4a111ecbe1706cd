package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShimLinksNoLiblxc: no package in the shim's import graph imports go-lxc (whatever
// needs liblxc runs in lxcri-start), and none outside the standard library needs cgo for another reason. A
// shim without cgo is a static binary: containerd execs it twice per container (start,
// then the daemon) and each exec would otherwise load the C library and liblxc.
func TestShimLinksNoLiblxc(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps",
		"-f", `{{.ImportPath}} {{.Standard}} {{len .CgoFiles}}{{range .Imports}} {{.}}{{end}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const golxc = "github.com/lxc/go-lxc"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("go list line %q", line)
		}
		pkg, std, cgoFiles := f[0], f[1] == "true", f[2]
		for _, imp := range f[3:] {
			if imp == golxc {
				t.Errorf("%s imports %s: the shim must not link liblxc (lxcri-start does)", pkg, golxc)
			}
		}
		if !std && cgoFiles != "0" && pkg != golxc {
			t.Errorf("%s needs cgo: the shim would not build as a static binary", pkg)
		}
	}
}
