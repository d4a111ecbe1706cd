//go:build linux

package shim_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
)

const pauseImage = "docker.io/library/pause:lxcri"

// TestCRI: Kubernetes' path, through containerd's CRI plugin and a runtime handler named
// lxcri (what a RuntimeClass selects): a pod sandbox and a container in it run on lxcri,
// with exec, logs and stats as crictl shows them.
func TestCRI(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			handler := fmt.Sprintf(`
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.lxcri]
  runtime_type = 'io.containerd.lxcri.v2'
`)
			env := start(t, b, harness.WithExtraNamespaces("k8s.io"), harness.WithSandboxImage(pauseImage), harness.WithConfig(handler))
			k8s := env.In("k8s.io")
			importPause(t, k8s)

			dir := t.TempDir()
			pod := filepath.Join(dir, "pod.json")
			os.WriteFile(pod, []byte(fmt.Sprintf(`{"metadata":{"name":"p1","namespace":"default","uid":"u1"},
				"log_directory":%q,
				"linux":{"security_context":{"namespace_options":{"network":2}}}}`, dir)), 0o644)
			ctr := filepath.Join(dir, "ctr.json")
			os.WriteFile(ctr, []byte(fmt.Sprintf(`{"metadata":{"name":"c1"},"image":{"image":%q},
				"command":["sh","-c","echo cri-hello; exec sleep 1000"],"log_path":"c1.log","linux":{}}`, env.Image)), 0o644)

			crictl := func(args ...string) string {
				t.Helper()
				out, errOut, code := env.Crictl(args...)
				if code != 0 {
					t.Fatalf("crictl %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
				}
				return strings.TrimSpace(out)
			}
			podID := crictl("runp", "--runtime", "lxcri", pod)
			defer func() {
				env.Crictl("stopp", podID)
				env.Crictl("rmp", "-f", podID)
			}()
			cid := crictl("create", podID, ctr, pod)
			crictl("start", cid)
			if out := crictl("exec", cid, "sh", "-c", "echo in-$((2*21))"); out != "in-42" {
				t.Errorf("crictl exec: %q", out)
			}
			deadline := time.Now().Add(10 * time.Second)
			var logs string
			for time.Now().Before(deadline) {
				if logs, _, _ = env.Crictl("logs", cid); strings.Contains(logs, "cri-hello") {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(logs, "cri-hello") {
				t.Errorf("crictl logs: %q", logs)
			}
			if out := crictl("stats", "-o", "json", cid); !strings.Contains(out, `"workingSetBytes"`) {
				t.Errorf("crictl stats has no memory figures: %s", out)
			}
			// Both the sandbox and the container run under the lxcri shim, one per pod.
			if shims := env.ShimProcesses(); len(shims) != 1 {
				t.Errorf("pod runs %d lxcri shims, want 1", len(shims))
			}
			crictl("stop", cid)
			crictl("rm", cid)
			crictl("stopp", podID)
			crictl("rmp", podID)
			waitNoShim(t, env)
		})
	}
}

// importPause builds a pause image (busybox sleeping until SIGTERM) and imports it.
func importPause(t *testing.T, env *harness.Env) {
	t.Helper()
	tar := filepath.Join(t.TempDir(), "pause.tar")
	script := filepath.Join(harness.RepoRoot(), "contrib", "scripts", "build-image.sh")
	cmdJSON := `["/bin/sh","-c","trap 'exit 0' TERM; while :; do sleep 1; done"]`
	if out, err := exec.Command(script, tar, pauseImage, cmdJSON).CombinedOutput(); err != nil {
		t.Fatalf("build pause image: %v: %s", err, out)
	}
	ctrOK(t, env, "images", "import", tar)
}

// TestCRIAnnotationRefused: a handler that forwards pod annotations (the operator's
// containerd config) does not let a pod author switch the backend: lxcri's own
// configuration has not allowed the annotation, so the pod is refused with the setting
// that would allow it, and nothing is left behind.
func TestCRIAnnotationRefused(t *testing.T) {
	b := backends()[0]
	handler := `
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.lxcri]
  runtime_type = 'io.containerd.lxcri.v2'
  pod_annotations = ['io.lxcri.*']
  container_annotations = ['io.lxcri.*']
`
	env := start(t, b, harness.WithExtraNamespaces("k8s.io"), harness.WithSandboxImage(pauseImage), harness.WithConfig(handler))
	k8s := env.In("k8s.io")
	importPause(t, k8s)
	dir := t.TempDir()
	pod := filepath.Join(dir, "pod.json")
	os.WriteFile(pod, []byte(`{"metadata":{"name":"p-ann","namespace":"default","uid":"u-ann"},
		"annotations":{"io.lxcri.backend":"crun"},
		"linux":{"security_context":{"namespace_options":{"network":2}}}}`), 0o644)
	out, errOut, code := env.Crictl("runp", "--runtime", "lxcri", pod)
	want := `annotation \"io.lxcri.backend\" is not allowed: the operator allows it with allowed_annotations in /etc/lxcri/config.toml`
	if code == 0 || !strings.Contains(errOut, want) && !strings.Contains(errOut, strings.ReplaceAll(want, `\"`, `"`)) {
		t.Errorf("crictl runp with a forwarded io.lxcri.backend annotation: exit %d, stdout %q, stderr %q, want an error saying %q", code, out, errOut, want)
	}
	if pods, _, _ := env.Crictl("pods", "-q"); strings.TrimSpace(pods) != "" {
		t.Errorf("refused pod left sandboxes: %q", pods)
		for _, id := range strings.Fields(pods) {
			env.Crictl("rmp", "-f", id)
		}
	}
	waitNoShim(t, env)
	if entries, _ := os.ReadDir("/run/lxcri/k8s.io"); len(entries) > 0 {
		t.Errorf("state left in /run/lxcri/k8s.io: %d entries", len(entries))
	}
	if cg := containerCgroups("k8s.io"); len(cg) > 0 {
		t.Errorf("container cgroups left: %v", cg)
	}
}
