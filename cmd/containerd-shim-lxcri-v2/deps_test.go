package main

import (
	"os/exec"
	"strings"
	"testing"
)

// liblxcImportersAllowed are the packages of the shim that may still link liblxc (through
// go-lxc): the proxmox-lxc backend attaches to its CTs with go-lxc. Every other package
// leaves liblxc to lxcri-start, so that the shim builds without cgo once none is left.
var liblxcImportersAllowed = map[string]bool{
	"github.com/lxcri/lxcri/backend/proxmoxlxc": true,
}

// TestShimLinksNoLiblxc: no package in the shim's import graph imports go-lxc but the
// allowed ones, and none outside the standard library needs cgo for another reason. A
// shim without cgo is a static binary: containerd execs it twice per container (start,
// then the daemon) and each exec would otherwise load the C library and liblxc.
func TestShimLinksNoLiblxc(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps",
		"-f", `{{.ImportPath}} {{.Standard}} {{len .CgoFiles}}{{range .Imports}} {{.}}{{end}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const golxc = "github.com/lxc/go-lxc"
	importers := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("go list line %q", line)
		}
		pkg, std, cgoFiles := f[0], f[1] == "true", f[2]
		for _, imp := range f[3:] {
			if imp == golxc {
				importers[pkg] = true
				if !liblxcImportersAllowed[pkg] {
					t.Errorf("%s imports %s: the shim must not link liblxc (lxcri-start does)", pkg, golxc)
				}
			}
		}
		if !std && cgoFiles != "0" && pkg != golxc && !importers[pkg] && !liblxcImportersAllowed[pkg] {
			t.Errorf("%s needs cgo: the shim would not build as a static binary", pkg)
		}
	}
}
