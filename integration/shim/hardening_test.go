//go:build linux

package shim_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/integration/harness"
)

// What an attacker who writes only a spec (ctr flags, Go client options) tries: values
// that would end a line of the LXC configuration and start one of the attacker's. Each is
// refused as an InvalidArgument naming the field, the injected host hook never runs, and
// nothing is left behind. An environment value is data, not configuration: a newline in
// it is legal and reaches the process verbatim.
func TestHardeningInjection(t *testing.T) {
	env := start(t, hardeningBackend)
	src := t.TempDir()
	for _, tc := range []struct {
		name string
		// run tries the attack with the payload injection(marker) and returns what the
		// user sees; value is the payload-carrying value where the process must see it.
		run  func(t *testing.T, id, marker string) (o outcome, stdout, value string)
		want []string // refused naming these; nil: accepted with stdout == value
	}{
		{
			name: "mount-destination/client", want: []string{"destination"},
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				o, out := clientRun(t, env, id, env.Image, oci.WithProcessArgs("true"), oci.WithMounts([]specs.Mount{
					{Destination: "/data" + injection(marker), Type: "bind", Source: src, Options: []string{"rbind", "ro"}},
				}))
				return o, out, ""
			},
		},
		{
			name: "mount-destination/ctr", want: []string{"destination"},
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				o, out := ctrRun(t, env, id, []string{"--mount", "type=bind,src=" + src + ",dst=/data" + injection(marker) + ",options=rbind:ro"}, "true")
				return o, out, ""
			},
		},
		{
			name: "mount-options/client", want: []string{"options"},
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				o, out := clientRun(t, env, id, env.Image, oci.WithProcessArgs("true"), oci.WithMounts([]specs.Mount{
					{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m" + injection(marker)}},
				}))
				return o, out, ""
			},
		},
		{
			name: "mount-options/ctr", want: []string{"options"},
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				o, out := ctrRun(t, env, id, []string{"--mount", "type=tmpfs,src=tmpfs,dst=/scratch,options=size=1m" + injection(marker)}, "true")
				return o, out, ""
			},
		},
		{
			name: "sysctl/client", want: []string{"sysctl", "net.ipv4.ip_forward"},
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				o, out := clientRun(t, env, id, env.Image, oci.WithProcessArgs("true"), withSysctl("net.ipv4.ip_forward", "1"+injection(marker)))
				return o, out, ""
			},
		},
		{
			name: "hostname/client", want: []string{"hostname"},
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				o, out := clientRun(t, env, id, env.Image, oci.WithProcessArgs("true"), oci.WithHostname("h"+injection(marker)))
				return o, out, ""
			},
		},
		{
			name: "hostname/ctr", want: []string{"hostname"},
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				o, out := ctrRun(t, env, id, []string{"--hostname", "h" + injection(marker)}, "true")
				return o, out, ""
			},
		},
		{
			// A valid backend name: today it silently moves the container to another backend.
			name: "annotation/ctr", want: []string{"io.lxcri.backend", "allowed_annotations"},
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				o, out := ctrRun(t, env, id, []string{"--annotation", "io.lxcri.backend=crun"}, "true")
				return o, out, ""
			},
		},
		{
			name: "annotation-payload/client", want: []string{"io.lxcri.backend", "allowed_annotations"},
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				o, out := clientRun(t, env, id, env.Image, oci.WithProcessArgs("true"),
					oci.WithAnnotations(map[string]string{"io.lxcri.backend": "lxc" + injection(marker)}))
				return o, out, ""
			},
		},
		{
			name: "env-newline/client",
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				v := "a\n" + injection(marker) + "\n"
				o, out := clientRun(t, env, id, env.Image, oci.WithEnv([]string{"LXCRI_NL=" + v}),
					oci.WithProcessArgs("sh", "-c", `printf %s "$LXCRI_NL"`))
				return o, out, v
			},
		},
		{
			name: "env-newline/ctr",
			run: func(t *testing.T, id, marker string) (outcome, string, string) {
				v := "a\n" + injection(marker)
				o, out := ctrRun(t, env, id, []string{"--env", "LXCRI_NL=" + v}, "sh", "-c", `printf %s "$LXCRI_NL"`)
				return o, out, v
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotHost(env.Namespace)
			marker := filepath.Join(markerDir(t), "injected")
			id := "hard-" + strings.NewReplacer("/", "-").Replace(tc.name)
			o, stdout, value := tc.run(t, id, marker)
			if tc.want != nil {
				expectRefused(t, o, tc.want...)
			} else if !o.ok || stdout != value {
				t.Errorf("got %s, stdout %q; want accepted, the process seeing %q", o, stdout, value)
			}
			assertNoMarker(t, marker)
			assertHealthyAndClean(t, env)
			before.assertNothingNew(t)
		})
	}
}

// The same attacks through Kubernetes' path: crictl with pod and container configs, on a
// runtime handler that forwards io.lxcri.* annotations. The pod has its own network
// namespace, so that a net.* sysctl and the hostname reach the runtime.
func TestHardeningInjectionCRI(t *testing.T) {
	env := criEnv(t)
	src := t.TempDir()
	for _, tc := range []struct {
		name string
		// edit puts the payload injection(marker) into the pod; it returns the value
		// the container must see in $LXCRI_NL when the attempt is accepted.
		edit func(p *criPod, marker string) string
		want []string // refused naming these; nil: accepted
	}{
		{
			name: "mount-destination", want: []string{"destination"},
			edit: func(p *criPod, marker string) string {
				p.ctr["mounts"] = []any{map[string]any{"container_path": "/data" + injection(marker), "host_path": src, "readonly": true}}
				return ""
			},
		},
		{
			name: "sysctl", want: []string{"sysctl", "net.ipv4.ip_forward"},
			edit: func(p *criPod, marker string) string {
				p.pod["linux"].(map[string]any)["sysctls"] = map[string]string{"net.ipv4.ip_forward": "1" + injection(marker)}
				return ""
			},
		},
		{
			name: "hostname", want: []string{"hostname"},
			edit: func(p *criPod, marker string) string {
				p.pod["hostname"] = "h" + injection(marker)
				return ""
			},
		},
		{
			name: "annotation", want: []string{"io.lxcri.backend", "allowed_annotations"},
			edit: func(p *criPod, marker string) string {
				p.pod["annotations"] = map[string]string{"io.lxcri.backend": "crun"}
				return ""
			},
		},
		{
			name: "annotation-payload", want: []string{"io.lxcri.backend", "allowed_annotations"},
			edit: func(p *criPod, marker string) string {
				p.pod["annotations"] = map[string]string{"io.lxcri.backend": "lxc" + injection(marker)}
				return ""
			},
		},
		{
			name: "env-newline",
			edit: func(p *criPod, marker string) string {
				v := "a\n" + injection(marker) + "\n"
				p.ctr["envs"] = []any{map[string]string{"key": "LXCRI_NL", "value": v}}
				return v
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotHost("k8s.io")
			marker := filepath.Join(markerDir(t), "injected")
			p := newCRIPod(t, env.Image, "sleep", "1000")
			value := tc.edit(p, marker)
			o, podID, cid := p.run(t, env)
			if tc.want != nil {
				expectRefused(t, o, tc.want...)
			} else if !o.ok {
				t.Errorf("got %s, want accepted", o)
			} else {
				out, errOut, code := env.Crictl("exec", cid, "sh", "-c", `printf %s "$LXCRI_NL"`)
				if code != 0 || out != value {
					t.Errorf("the process sees %q (exit %d, %s), want %q", out, code, errOut, value)
				}
			}
			p.remove(t, env, podID, before)
			assertNoMarker(t, marker)
		})
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// A secret in the environment of a container or of an exec'ed process is not on any
// command line of the host (/proc/PID/cmdline is readable by every user) while it runs.
func TestHardeningSecretsOffCmdline(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		env := start(t, hardeningBackend)
		ctx := env.Context()
		secret, execSecret := "s3cr3t-"+randomHex(t), "s3cr3t-exec-"+randomHex(t)
		c := env.Client()
		img, err := c.GetImage(ctx, env.Image)
		if err != nil {
			t.Fatal(err)
		}
		cont, err := c.NewContainer(ctx, "hard-secret", client.WithNewSnapshot("hard-secret", img),
			client.WithNewSpec(oci.WithImageConfig(img), oci.WithEnv([]string{"LXCRI_SECRET=" + secret}), oci.WithProcessArgs("sleep", "1000")),
			client.WithRuntime(rt, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer cont.Delete(ctx, client.WithSnapshotCleanup)
		task, err := cont.NewTask(ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		defer task.Delete(ctx, client.WithProcessKill)
		if err := task.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if leaks := cmdlinesHolding(secret); len(leaks) > 0 {
			t.Errorf("the container's secret is on host command lines:\n%s", strings.Join(leaks, "\n"))
		}

		spec, err := cont.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pspec := *spec.Process
		pspec.Args = []string{"sleep", "1000"}
		pspec.Env = append(append([]string(nil), pspec.Env...), "LXCRI_EXEC_SECRET="+execSecret)
		proc, err := task.Exec(ctx, "secret-exec", &pspec, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		if err := proc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if leaks := cmdlinesHolding(execSecret); len(leaks) > 0 {
			t.Errorf("the exec's secret is on host command lines:\n%s", strings.Join(leaks, "\n"))
		}
		proc.Delete(ctx, client.WithProcessKill)
	})
	t.Run("cri", func(t *testing.T) {
		env := criEnv(t)
		before := snapshotHost("k8s.io")
		secret := "s3cr3t-" + randomHex(t)
		p := newCRIPod(t, env.Image, "sleep", "1000")
		p.ctr["envs"] = []any{map[string]string{"key": "LXCRI_SECRET", "value": secret}}
		o, podID, _ := p.run(t, env)
		if !o.ok {
			t.Errorf("pod: %s", o)
		} else if leaks := cmdlinesHolding(secret); len(leaks) > 0 {
			t.Errorf("the container's secret is on host command lines:\n%s", strings.Join(leaks, "\n"))
		}
		p.remove(t, env, podID, before)
	})
}

// An image whose /lnk is a symlink to a host folder, and a bind mount at /lnk/<name>: the
// mount point is made inside the rootfs (the container sees the mount there) or the mount
// is refused; nothing is ever created in the host folder. The symlink either dangles in
// the image, or its target exists in the image too (as /etc would).
func TestHardeningSymlinkMountPoint(t *testing.T) {
	env := start(t, hardeningBackend)
	base := markerDir(t)
	escape := filepath.Join(base, "escape")
	if err := os.Mkdir(escape, 0o755); err != nil {
		t.Fatal(err)
	}
	lnk := harness.LayerEntry{Name: "lnk", Symlink: escape}
	inImage := strings.TrimPrefix(escape, "/")
	images := []struct{ name, ref string }{
		{"dangling", "docker.io/library/busybox:lxcri-symlink-dangling"},
		{"in-image", "docker.io/library/busybox:lxcri-symlink-in-image"},
	}
	ctrOK(t, env, "images", "import", harness.ImageWithLayer(t, t.TempDir(), images[0].ref, lnk))
	ctrOK(t, env, "images", "import", harness.ImageWithLayer(t, t.TempDir(), images[1].ref,
		harness.LayerEntry{Name: filepath.Dir(inImage), Dir: true}, harness.LayerEntry{Name: inImage, Dir: true}, lnk))

	srcDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(srcDir, "probe"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	srcFile := filepath.Join(t.TempDir(), "nologin")
	if err := os.WriteFile(srcFile, []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, img := range images {
		for _, tc := range []struct {
			name, dst, src, look, want string
		}{
			{name: "file", dst: "/lnk/nologin", src: srcFile, look: "cat /lnk/nologin", want: "from-host\n"},
			{name: "dir", dst: "/lnk/sub", src: srcDir, look: "ls /lnk/sub", want: "probe\n"},
		} {
			t.Run(img.name+"/"+tc.name, func(t *testing.T) {
				before := snapshotHost(env.Namespace)
				o, out := clientRun(t, env, "hard-symlink-"+img.name+"-"+tc.name, img.ref, oci.WithProcessArgs("sh", "-c", tc.look),
					oci.WithMounts([]specs.Mount{{Destination: tc.dst, Type: "bind", Source: tc.src, Options: []string{"rbind", "ro"}}}))
				switch {
				case o.ok && out != tc.want:
					t.Errorf("accepted, but the container sees %q at %s, want %q", out, tc.dst, tc.want)
				case !o.ok && o.code != "InvalidArgument":
					t.Errorf("got %s, want it accepted (mount point inside the rootfs) or refused as InvalidArgument", o)
				default:
					t.Logf("%s", o)
				}
				if ents, err := os.ReadDir(escape); err != nil || len(ents) > 0 {
					var names []string
					for _, e := range ents {
						names = append(names, e.Name())
						os.RemoveAll(filepath.Join(escape, e.Name())) // for the next case
					}
					t.Errorf("the mount point was made on the host, through the image's symlink: %s holds %v (%v)", escape, names, err)
				}
				assertHealthyAndClean(t, env)
				before.assertNothingNew(t)
			})
		}
	}
}

// A container that joins another's pid namespace leaves a background process when its
// init exits; the process dies with the init (as with runc), and the container is removed
// without its cgroup staying busy. Through the Go client (joining a container's namespace
// by path) and through CRI (a pod sharing one pid namespace, shareProcessNamespace).
func TestHardeningSharedPidNamespace(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		const id = "hard-pid-b"
		// Runs after the harness removed everything: a cgroup a failure leaked goes too.
		t.Cleanup(func() { removeCgroupsNamed(id) })
		env := start(t, hardeningBackend)
		ctx, cancel := context.WithTimeout(env.Context(), 2*time.Minute)
		defer cancel()
		runDetached(t, env, "hard-pid-a", nil, "sleep", "1000")
		defer removeTask(t, env, "hard-pid-a")
		nsPath := fmt.Sprintf("/proc/%d/ns/pid", taskPid(t, env, "hard-pid-a"))

		tag := sleepTag()
		c := env.Client()
		img, err := c.GetImage(ctx, env.Image)
		if err != nil {
			t.Fatal(err)
		}
		cont, err := c.NewContainer(ctx, id, client.WithNewSnapshot(id, img),
			client.WithNewSpec(oci.WithImageConfig(img),
				oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: nsPath}),
				oci.WithProcessArgs("sh", "-c", "sleep "+tag+" & exit 0")),
			client.WithRuntime(rt, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer cont.Delete(ctx, client.WithSnapshotCleanup)
		task, err := cont.NewTask(ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := task.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("the init of the container did not exit")
		}
		assertSleepGone(t, tag)
		if _, err := task.Delete(ctx); err != nil {
			t.Errorf("delete after the init exited: %v", err)
		}
		if cg := harness.CgroupsNamed(id); len(cg) > 0 {
			t.Errorf("cgroups of %s left: %v", id, cg)
		}
	})
	t.Run("cri", func(t *testing.T) {
		env := criEnv(t)
		before := snapshotHost("k8s.io")
		tag := sleepTag()
		p := newCRIPod(t, env.Image, "sh", "-c", "sleep "+tag+" & exit 0")
		p.pod["linux"].(map[string]any)["security_context"].(map[string]any)["namespace_options"].(map[string]any)["pid"] = 0
		o, podID, cid := p.run(t, env)
		if !o.ok {
			t.Fatalf("pod: %s", o)
		}
		// Runs once the pod is gone (its pid namespace with it): a leaked cgroup goes too.
		t.Cleanup(func() { removeCgroupsNamed(cid) })
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, _, _ := env.Crictl("inspect", "-o", "go-template", "--template", "{{.status.state}}", cid)
			if strings.TrimSpace(out) == "CONTAINER_EXITED" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("container %s is %q, not exited, after 20s", cid, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
		assertSleepGone(t, tag)
		if _, errOut, code := env.Crictl("rm", cid); code != 0 {
			t.Errorf("crictl rm after the init exited: %s", errOut)
		}
		if cg := harness.CgroupsNamed(cid); len(cg) > 0 {
			t.Errorf("cgroups of %s left: %v", cid, cg)
		}
		p.remove(t, env, podID, before)
	})
}

// sleepTag is a sleep duration no other process uses, to find a sleep on the host.
func sleepTag() string {
	return fmt.Sprintf("%d", 900000+time.Now().UnixNano()%99999)
}

// assertSleepGone fails if `sleep tag` still runs 10s on.
func assertSleepGone(t *testing.T, tag string) {
	t.Helper()
	bg := "sleep\x00" + tag + "\x00"
	deadline := time.Now().Add(10 * time.Second)
	for len(cmdlinesHolding(bg)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := cmdlinesHolding(bg); len(left) > 0 {
		t.Errorf("the container's background process survives its init: %v", left)
	}
}

// removeCgroupsNamed removes the (empty) cgroups a failed test leaked, and their parents
// once empty (the namespace level, which the harness could not remove while they were
// there).
func removeCgroupsNamed(name string) {
	for _, cg := range harness.CgroupsNamed(name) {
		if syscall.Rmdir(cg) == nil {
			syscall.Rmdir(filepath.Dir(cg))
		}
	}
}
