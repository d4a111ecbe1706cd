//go:build linux

package shim_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/integration/harness"
)

// criParityEnv is containerd with a CRI runtime handler "lxcri" for backend b and the
// pause image; pods use the host's network (no CNI needed).
func criParityEnv(t *testing.T, b backendCase) *harness.Env {
	t.Helper()
	handler := `
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.lxcri]
  runtime_type = 'io.containerd.lxcri.v2'
`
	env := start(t, b, harness.WithExtraNamespaces("k8s.io"), harness.WithSandboxImage(pauseImage), harness.WithConfig(handler))
	importPause(t, env.In("k8s.io"))
	return env
}

// criRunPod runs a pod (privileged when asked, as critest's propagation tests do) and
// starts a container of ctr's config in it with crictl; both are removed at the end. A
// container that cannot be created or started (containerd's CRI creates the task at
// start) gives runErr, crictl's message.
func criRunPod(t *testing.T, env *harness.Env, name string, privileged bool, ctr map[string]any) (podID, cid, runErr string) {
	t.Helper()
	dir := t.TempDir()
	write := func(file string, v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pod := write("pod.json", map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "default", "uid": name + "-uid"},
		"log_directory": dir,
		"linux": map[string]any{"security_context": map[string]any{
			"privileged":        privileged,
			"namespace_options": map[string]any{"network": 2},
		}},
	})
	ctr["metadata"] = map[string]any{"name": "c"}
	ctr["image"] = map[string]any{"image": env.Image}
	ctr["log_path"] = "c.log"
	cfg := write("ctr.json", ctr)
	crictl := func(args ...string) string {
		t.Helper()
		out, errOut, code := env.Crictl(args...)
		if code != 0 {
			t.Fatalf("crictl %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	podID = crictl("runp", "--runtime", "lxcri", pod)
	t.Cleanup(func() {
		env.Crictl("stopp", podID)
		env.Crictl("rmp", "-f", podID)
	})
	out, errOut, code := env.Crictl("create", podID, cfg, pod)
	if code != 0 {
		return podID, "", errOut
	}
	cid = strings.TrimSpace(out)
	if _, errOut, code := env.Crictl("start", cid); code != 0 {
		return podID, cid, errOut
	}
	return podID, cid, ""
}

// TestCRIReadOnlyRootfs: a container with readOnlyRootFilesystem starts, and cannot write
// to its root filesystem (critest's "runtime should support ReadOnlyRootfs").
func TestCRIReadOnlyRootfs(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := criParityEnv(t, b)
			_, cid, cerr := criRunPod(t, env, "rofs", false, map[string]any{
				"command": []string{"sleep", "1000"},
				"linux":   map[string]any{"security_context": map[string]any{"readonly_rootfs": true}},
			})
			if cerr != "" {
				t.Fatalf("crictl create/start: %s", cerr)
			}
			out, errOut, code := env.Crictl("exec", cid, "touch", "/test.go")
			if code == 0 || !strings.Contains(out+errOut, "Read-only file system") {
				t.Errorf("touch in the read-only root: exit %d, %q %q; want Read-only file system", code, out, errOut)
			}
			// A filesystem mounted on it stays writable.
			if out, errOut, code := env.Crictl("exec", cid, "sh", "-c", "touch /dev/shm/x && echo ok"); code != 0 || strings.TrimSpace(out) != "ok" {
				t.Errorf("write to /dev/shm: exit %d, %q %q", code, out, errOut)
			}
		})
	}
}

// TestCRIMountPropagation: a volume with Bidirectional propagation (rshared) sees mounts
// made below it on the host, and the host sees mounts the container makes there; with
// HostToContainer (rslave) only the first (critest's "runtime should support mount
// propagation"). The lxc backend refuses Bidirectional: liblxc cannot give it.
func TestCRIMountPropagation(t *testing.T) {
	for _, b := range backends() {
		for _, prop := range []struct {
			name     string
			value    int // runtime.v1.MountPropagation
			toHost   bool
			fromHost bool
		}{
			{"rprivate", 0, false, false},
			{"rslave", 1, false, true},
			{"rshared", 2, true, true},
		} {
			t.Run(b.name+"/"+prop.name, func(t *testing.T) {
				env := criParityEnv(t, b)
				host := t.TempDir()
				src := filepath.Join(host, "mnt")
				flagDir := filepath.Join(host, "flags")
				hostMnt := filepath.Join(src, "fromhost")
				for _, d := range []string{hostMnt, flagDir} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(filepath.Join(flagDir, "flagFile"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := unix.Mount(src, src, "bind", unix.MS_BIND|unix.MS_REC, ""); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { unix.Unmount(src, unix.MNT_DETACH) })
				flag := unix.MS_SHARED
				if prop.value == 0 {
					flag = unix.MS_PRIVATE
				}
				if err := unix.Mount("", src, "", uintptr(flag|unix.MS_REC), ""); err != nil {
					t.Fatal(err)
				}
				_, cid, cerr := criRunPod(t, env, "prop-"+prop.name, true, map[string]any{
					"command": []string{"sleep", "1000"},
					"linux":   map[string]any{"security_context": map[string]any{"privileged": true}},
					"mounts":  []map[string]any{{"container_path": src, "host_path": src, "propagation": prop.value}},
				})
				if b.name == "lxc" && prop.toHost {
					// liblxc cannot propagate a mount back to the host (backend/lxc/README.md):
					// refused when the task is created, naming the option and why.
					msg := strings.ReplaceAll(cerr, `\"`, `"`)
					if cerr == "" || !strings.Contains(msg, `"rshared"`) || !strings.Contains(msg, "back to the host") {
						t.Fatalf("create with Bidirectional propagation on lxc: %q, want a refusal of \"rshared\" saying why", cerr)
					}
					return
				}
				if cerr != "" {
					t.Fatalf("crictl create/start: %s", cerr)
				}

				// host → container
				if err := unix.Mount(flagDir, hostMnt, "bind", unix.MS_BIND, ""); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { unix.Unmount(hostMnt, unix.MNT_DETACH) })
				out, errOut, code := env.Crictl("exec", cid, "ls", "-A", hostMnt)
				if code != 0 {
					t.Fatalf("ls in the container: exit %d %s", code, errOut)
				}
				if got := strings.TrimSpace(out) != ""; got != prop.fromHost {
					t.Errorf("a mount made on the host is seen in the container: %v, want %v (ls: %q)", got, prop.fromHost, out)
				}

				// container → host
				ctrMnt := filepath.Join(src, "fromcontainer")
				if out, errOut, code := env.Crictl("exec", cid, "sh", "-c", "mkdir -p "+ctrMnt+" && mount --bind /etc "+ctrMnt); code != 0 {
					t.Fatalf("mount in the container: exit %d %s %s", code, out, errOut)
				}
				t.Cleanup(func() { unix.Unmount(ctrMnt, unix.MNT_DETACH) })
				entries, err := os.ReadDir(ctrMnt)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(entries) > 0; got != prop.toHost {
					t.Errorf("a mount made in the container is seen on the host: %v, want %v", got, prop.toHost)
				}
			})
		}
	}
}
