//go:build linux

package shim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/integration/harness"
)

// hardeningBackend is the default backend, with the crun backend (driving runc) usable,
// so that an annotation that switches backends would succeed if it were let through.
var hardeningBackend = backendCase{name: "lxc", config: "backend = \"lxc\"\n[crun]\nbinary = \"runc\"\n"}

// injection is a payload that, once a value holding it reaches an LXC configuration file
// unescaped, makes liblxc read a line of its own: a pre-start hook, which liblxc runs as
// root on the host. The hook creates marker; `;#` comments out the rest of the line.
func injection(marker string) string {
	return "\rlxc.hook.pre-start=/bin/touch${IFS}" + marker + ";#"
}

// markerDir returns a fresh host folder for markers and hostile symlink targets, removed
// when the test ends; a failing test creates files there, never in a real host folder.
func markerDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "lxcri-hard-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// assertNoMarker fails the test if the injected hook ran.
func assertNoMarker(t *testing.T, marker string) {
	t.Helper()
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the injected hook ran on the host: %s exists", marker)
	} else if !os.IsNotExist(err) {
		t.Errorf("stat %s: %v", marker, err)
	}
}

// hostProcs maps the pid of every host process (but this test binary) to its command line.
func hostProcs() map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		out[pid] = string(b)
	}
	return out
}

// cmdlinesHolding lists the host processes whose /proc/PID/cmdline (readable by every
// user of the host) holds s.
func cmdlinesHolding(s string) []string {
	var out []string
	for pid, cmd := range hostProcs() {
		if strings.Contains(cmd, s) {
			out = append(out, fmt.Sprintf("%d %q", pid, strings.ReplaceAll(cmd, "\x00", " ")))
		}
	}
	return out
}

// hostSnapshot is what a test compares the host with after it removed its containers:
// what ran and what state existed before it began.
type hostSnapshot struct {
	helpers  map[int]bool
	stateDir string
	states   map[string]bool
}

// snapshotHost records the lxcri-start processes and the entries of lxcri's state folder
// of namespace ns.
func snapshotHost(ns string) hostSnapshot {
	s := hostSnapshot{helpers: helperPids(), stateDir: filepath.Join("/run/lxcri", ns), states: map[string]bool{}}
	ents, _ := os.ReadDir(s.stateDir)
	for _, e := range ents {
		s.states[e.Name()] = true
	}
	return s
}

// assertNothingNew fails if an lxcri-start process or a state entry that was not there
// at the snapshot is left.
func (s hostSnapshot) assertNothingNew(t *testing.T) {
	t.Helper()
	assertNoNewHelpers(t, s.helpers)
	ents, _ := os.ReadDir(s.stateDir)
	for _, e := range ents {
		if !s.states[e.Name()] {
			t.Errorf("state left: %s", filepath.Join(s.stateDir, e.Name()))
		}
	}
}

// helperPids are the pids of running lxcri-start processes (monitors and execs).
func helperPids() map[int]bool {
	out := map[int]bool{}
	for pid, cmd := range hostProcs() {
		argv0, _, _ := strings.Cut(cmd, "\x00")
		if filepath.Base(argv0) == "lxcri-start" {
			out[pid] = true
		}
	}
	return out
}

// assertNoNewHelpers fails if an lxcri-start process that was not in before still runs.
func assertNoNewHelpers(t *testing.T, before map[int]bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []int
		for pid := range helperPids() {
			if !before[pid] {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("lxcri-start processes left: %v", left)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outcome is what a user sees of an attempt to run a container: ok, or the error text
// with its gRPC code ("" where the tool does not show it: ctr prints the message only).
type outcome struct {
	ok   bool
	code string
	msg  string
}

func (o outcome) String() string {
	if o.ok {
		return "accepted"
	}
	return fmt.Sprintf("refused (code %q): %q", o.code, o.msg)
}

// clientOutcome is the outcome of a Go client call that failed with err.
func clientOutcome(err error) outcome {
	code := "other"
	if errdefs.IsInvalidArgument(err) {
		code = "InvalidArgument"
	}
	return outcome{code: code, msg: err.Error()}
}

// expectRefused fails unless o is a refusal whose message holds every want, with the code
// InvalidArgument where the tool shows the code.
func expectRefused(t *testing.T, o outcome, want ...string) {
	t.Helper()
	if o.ok || (o.code != "" && o.code != "InvalidArgument") {
		t.Errorf("got %s, want InvalidArgument naming %q", o, want)
		return
	}
	for _, w := range want {
		if !strings.Contains(o.msg, w) {
			t.Errorf("got %s, want a message naming %q", o, w)
		}
	}
}

// ctrRun is `ctr run --rm` of the busybox image with flags, as a user types it.
func ctrRun(t *testing.T, env *harness.Env, id string, flags []string, args ...string) (outcome, string) {
	t.Helper()
	a := append(append([]string{"run", "--rm", "--runtime", rt}, flags...), env.Image, id)
	out, errOut, code := env.Ctr(append(a, args...)...)
	return outcome{ok: code == 0, msg: errOut}, out
}

// clientRun creates a container of image with the Go client and runs its task to the end;
// the container is removed again whatever happens. stdout is what the process printed.
func clientRun(t *testing.T, env *harness.Env, id, image string, ops ...oci.SpecOpts) (o outcome, stdout string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(env.Context(), 60*time.Second)
	defer cancel()
	c := env.Client()
	img, err := c.GetImage(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	cont, err := c.NewContainer(ctx, id,
		client.WithNewSnapshot(id, img),
		client.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(img)}, ops...)...),
		client.WithRuntime(rt, nil))
	if err != nil {
		t.Fatalf("new container: %v", err)
	}
	defer cont.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup)
	// one buffer each: a writer shared by both copies loses output, whichever the shim
	var out, errOut bytes.Buffer
	task, err := cont.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &errOut)))
	if err != nil {
		return clientOutcome(err), ""
	}
	defer task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
	ch, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		return clientOutcome(err), ""
	}
	select {
	case st := <-ch:
		task.IO().Wait() // the output is copied after the exit is reported
		if code := st.ExitCode(); code != 0 {
			return outcome{code: "other", msg: fmt.Sprintf("exit %d: %s", code, errOut.String())}, out.String()
		}
	case <-ctx.Done():
		return outcome{code: "other", msg: "task did not exit"}, out.String()
	}
	return outcome{ok: true}, out.String()
}

// withSysctl sets one linux.sysctl entry.
func withSysctl(key, value string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		s.Linux.Sysctl[key] = value
		return nil
	}
}

// ---- CRI ------------------------------------------------------------------------------

// criEnv is containerd with a CRI runtime handler "lxcri" that forwards io.lxcri.* pod and
// container annotations to the shim (as a cluster operator may configure it), and a CNI
// network on a bridge of its own (no gateway, no masquerading, removed at the end), so
// that pods get a network namespace of their own.
func criEnv(t *testing.T) *harness.Env {
	t.Helper()
	suffix := randomHex(t)[:6]
	bridge := "lxh" + suffix
	// Registered first, so it runs after the harness removed the pods.
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
			t.Logf("ip link del %s: %v: %s", bridge, err, out)
		}
	})
	handler := `
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.lxcri]
  runtime_type = 'io.containerd.lxcri.v2'
  pod_annotations = ['io.lxcri.*']
  container_annotations = ['io.lxcri.*']
`
	env := start(t, hardeningBackend, harness.WithExtraNamespaces("k8s.io"), harness.WithSandboxImage(pauseImage), harness.WithConfig(handler))
	importPause(t, env.In("k8s.io"))
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"lxcri-hard","plugins":[{"type":"bridge","bridge":%q,
		"isGateway":false,"ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.219.%d.0/24"}]],
		"dataDir":%q}}]}`, bridge, 1+int(suffix[0])%250, filepath.Join(env.Root, "cni", "ipam"))
	if err := os.WriteFile(filepath.Join(env.Root, "cni", "net.d", "10-lxcri-hard.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, _ := env.Crictl("info")
		var info struct {
			Status struct {
				Conditions []struct {
					Type   string `json:"type"`
					Status bool   `json:"status"`
				} `json:"conditions"`
			} `json:"status"`
		}
		json.Unmarshal([]byte(out), &info)
		for _, c := range info.Status.Conditions {
			if c.Type == "NetworkReady" && c.Status {
				return env
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRI network not ready after 20s: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// criPod is a pod sandbox config and a container config for crictl, as JSON objects
// a test changes before running them.
type criPod struct {
	pod, ctr map[string]any
	// cgroupParent is the pod's cgroup parent: every cgroup the pod makes is below it.
	cgroupParent string
	dir          string
}

// newCRIPod is a pod with network, ipc and uts namespaces of its own, each container in a
// pid namespace of its own, and a container of image running args.
func newCRIPod(t *testing.T, image string, args ...string) *criPod {
	dir := t.TempDir()
	parent := "lxcri-hard-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() {
		for _, cg := range harness.CgroupsNamed(parent) {
			syscall.Rmdir(cg)
		}
	})
	return &criPod{
		dir:          dir,
		cgroupParent: parent,
		pod: map[string]any{
			"metadata":      map[string]any{"name": "hard", "namespace": "default", "uid": "hard-" + parent},
			"log_directory": dir,
			"linux": map[string]any{
				"cgroup_parent":    "/" + parent,
				"security_context": map[string]any{"namespace_options": map[string]any{"network": 0, "pid": 1, "ipc": 0}},
			},
		},
		ctr: map[string]any{
			"metadata": map[string]any{"name": "c"},
			"image":    map[string]any{"image": image},
			"command":  args,
			"log_path": "c.log",
			"linux":    map[string]any{},
		},
	}
}

// run runs the pod and starts its container with crictl (runp, create, start), as a
// user would; the first step that fails gives the outcome.
func (p *criPod) run(t *testing.T, env *harness.Env) (o outcome, podID, cid string) {
	t.Helper()
	write := func(name string, v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(p.dir, name)
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	pod, ctr := write("pod.json", p.pod), write("ctr.json", p.ctr)
	step := func(args ...string) (string, bool) {
		out, errOut, code := env.Crictl(args...)
		if code != 0 {
			o = outcome{code: "other", msg: errOut}
			if strings.Contains(errOut, "code = InvalidArgument") {
				o.code = "InvalidArgument"
			}
			return "", false
		}
		return strings.TrimSpace(out), true
	}
	var ok bool
	if podID, ok = step("runp", "--runtime", "lxcri", pod); !ok {
		return o, "", ""
	}
	if cid, ok = step("create", podID, ctr, pod); !ok {
		return o, podID, ""
	}
	if _, ok = step("start", cid); !ok {
		return o, podID, cid
	}
	return outcome{ok: true}, podID, cid
}

// remove stops and removes the pod (and its containers), then checks that nothing of it is
// left: no shim, lxcri-start, mount, cgroup or state.
func (p *criPod) remove(t *testing.T, env *harness.Env, podID string, before hostSnapshot) {
	t.Helper()
	if podID != "" {
		env.Crictl("stopp", podID)
		if _, errOut, code := env.Crictl("rmp", "-f", podID); code != 0 {
			t.Errorf("crictl rmp: %s", errOut)
		}
	}
	waitNoShim(t, env)
	before.assertNothingNew(t)
	if m := harness.MountsUnder(env.Root); len(m) > 0 {
		t.Errorf("mounts left under the containerd root: %v", m)
	}
	if cg := containerCgroups(p.cgroupParent); len(cg) > 0 {
		t.Errorf("pod cgroups left: %v", cg)
	}
}
