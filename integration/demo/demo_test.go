//go:build linux

// Package demo runs contrib/scripts/demo.sh, what `make demo` shows a new user, from the
// source tree, and checks that it shows what it promises and leaves nothing behind.
package demo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lxcri/lxcri/integration/harness"
)

// runDemo runs the demo script with the tools and shim the other integration tests use,
// and returns its combined output and exit code.
func runDemo(t *testing.T, env ...string) (string, int) {
	t.Helper()
	root := harness.RepoRoot()
	if root == "" {
		t.Fatal("cannot find the lxcri source tree")
	}
	cmd := exec.Command(filepath.Join(root, "contrib", "scripts", "demo.sh"))
	cmd.Env = append(os.Environ(),
		"LXCRI_TOOLS_DIR="+harness.ToolsDir(t),
		"LXCRI_SHIM_DIR="+harness.ShimDir(),
		"TERM=dumb")
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run demo.sh: %v", err)
		}
		code = ee.ExitCode()
	}
	t.Logf("demo.sh exited %d:\n%s", code, out.String())
	return out.String(), code
}

var (
	tmpRe  = regexp.MustCompile(`starting a private containerd in (/tmp/lxcri-demo\.[A-Za-z0-9]+)`)
	poolRe = regexp.MustCompile(`zpool create -o cachefile=none -m \S+ (lxcri-demo-[0-9]+) `)
)

// assertClean checks, independently of the demo's own checks, that the demo's temporary
// folder, pool, mounts, shims and cgroups are gone.
func assertClean(t *testing.T, out string) {
	t.Helper()
	m := tmpRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatal("the demo did not say where its containerd ran")
	}
	tmp := m[1]
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the demo's folder %s is still there (%v)", tmp, err)
	}
	if ms := harness.MountsUnder(tmp); len(ms) > 0 {
		t.Errorf("mounts left under %s: %v", tmp, ms)
	}
	if p := poolRe.FindStringSubmatch(out); p != nil {
		if zl, err := exec.Command("zpool", "list", "-H", "-o", "name").Output(); err == nil &&
			strings.Contains("\n"+string(zl), "\n"+p[1]+"\n") {
			t.Errorf("pool %s is still imported", p[1])
		}
	}
	for _, pid := range harness.ShimProcesses() {
		if cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline")); bytes.Contains(cmd, []byte(tmp)) {
			t.Errorf("shim %d of the demo still runs", pid)
		}
	}
	if cg := harness.CgroupsNamed("lxcri-demo"); len(cg) > 0 {
		t.Errorf("cgroups of the demo left behind: %v", cg)
	}
}

// TestDemo: the demo runs a container on the default backend, execs into it, shows its log
// and stats, checkpoints it on the ZFS pool it made, restores it with exactly the files of
// the checkpoint, prints the checkpoint's time, and ends with nothing left behind.
func TestDemo(t *testing.T) {
	out, code := runDemo(t)
	if code != 0 {
		t.Fatalf("demo.sh failed with exit code %d", code)
	}
	for _, want := range []string{
		"backend lxc, the default",
		"hello from ",                        // exec
		"init started\na line for the log\n", // the container's log: init's line, then the exec's
		"memory.usage_in_bytes",              // stats
		"@ckpt-",                             // the checkpoint's ZFS snapshot
		"/before.txt is there, /after.txt is not",
		"nothing left behind",
		"demo finished",
		"Where to go next",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`checkpoint took [0-9]+ ms`).MatchString(out) {
		t.Error("the demo did not print the checkpoint's time")
	}
	assertClean(t, out)
}

// TestDemoFailsOnAFailingStep: a step that fails (here the run, on a backend name the shim
// refuses) fails the demo, which still removes everything it made.
func TestDemoFailsOnAFailingStep(t *testing.T) {
	out, code := runDemo(t, "DEMO_BACKEND=no-such-backend")
	if code == 0 {
		t.Fatal("demo.sh succeeded although its container could not run")
	}
	for _, want := range []string{`unknown backend "no-such-backend"`, "demo failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if strings.Contains(out, "demo finished") {
		t.Error("a failed demo says it finished")
	}
	assertClean(t, out)
}
