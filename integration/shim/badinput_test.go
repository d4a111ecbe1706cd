//go:build linux

package shim_test

import (
	"context"
	"github.com/containerd/containerd/v2/core/containers"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestBadInput: each mistake a user can make gives a clear error with the right code, and
// leaves containerd healthy and nothing behind (shim, mount, cgroup, state directory).
func TestBadInput(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			for _, tc := range []struct {
				name    string
				options *runtimeoptions.Options
				specOps []oci.SpecOpts
				is      func(error) bool
				code    string
				msg     string
			}{
				{
					// The operator allows the annotation (runtime options), so its value is judged.
					name: "unknown-backend", code: "InvalidArgument", is: errdefs.IsInvalidArgument,
					options: &runtimeoptions.Options{ConfigBody: []byte("allowed_annotations = [\"io.lxcri.backend\"]\n")},
					specOps: []oci.SpecOpts{oci.WithAnnotations(map[string]string{"io.lxcri.backend": "nope"})},
					msg:     `annotation io.lxcri.backend: unknown backend "nope"`,
				},
				{
					name: "annotation-not-allowed", code: "InvalidArgument", is: errdefs.IsInvalidArgument,
					specOps: []oci.SpecOpts{oci.WithAnnotations(map[string]string{"io.lxcri.backend": "lxc"})},
					msg:     `annotation "io.lxcri.backend" is not allowed: the operator allows it with allowed_annotations in /etc/lxcri/config.toml`,
				},
				{
					name: "malformed-toml", code: "InvalidArgument", is: errdefs.IsInvalidArgument,
					options: &runtimeoptions.Options{ConfigBody: []byte("backend = \n[crun")},
					msg:     "malformed TOML in runtime options",
				},
				{
					name: "unknown-key", code: "InvalidArgument", is: errdefs.IsInvalidArgument,
					options: &runtimeoptions.Options{ConfigBody: []byte("[crun]\nbinnary = \"runc\"\n")},
					msg:     "binnary",
				},
				{
					name: "missing-config-path", code: "NotFound", is: errdefs.IsNotFound,
					options: &runtimeoptions.Options{ConfigPath: "/nonexistent/lxcri.toml"},
					msg:     "/nonexistent/lxcri.toml",
				},
				{
					name: "missing-binary", code: "FailedPrecondition", is: errdefs.IsFailedPrecondition,
					options: &runtimeoptions.Options{ConfigBody: []byte("backend = \"crun\"\n[crun]\nbinary = \"/nonexistent/runc\"\n")},
					msg:     `"/nonexistent/runc" not found`,
				},
				{
					name: "no-process-args", code: "InvalidArgument", is: errdefs.IsInvalidArgument,
					specOps: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
						s.Process.Args = nil
						return nil
					}},
					msg: "process.args is empty",
				},
			} {
				t.Run(tc.name, func(t *testing.T) {
					err := createTask(t, env, "bad-"+tc.name, tc.options, tc.specOps...)
					if err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.msg) {
						t.Errorf("got %v, want a %s error saying %q", err, tc.code, tc.msg)
					}
					assertHealthyAndClean(t, env)
				})
			}

			// The same mistake through ctr: the user reads the reason.
			cfg := filepath.Join(t.TempDir(), "bad.toml")
			os.WriteFile(cfg, []byte("backend = \"lxd\"\n"), 0o644)
			_, errOut, code := env.Ctr("run", "--rm", "--runtime", rt, "--runtime-config-path", cfg, env.Image, "bad-ctr", "true")
			if code == 0 || !strings.Contains(errOut, `unknown backend "lxd": valid backends are crun, lxc, proxmox-lxc, proxmox-vm`) {
				t.Errorf("ctr run with an unknown backend: exit %d, stderr %q", code, errOut)
			}
			assertHealthyAndClean(t, env)
		})
	}
}

// createTask makes a container with the lxcri runtime and tries to create its task; the
// container is removed again whatever happens.
func createTask(t *testing.T, env *harness.Env, id string, opts *runtimeoptions.Options, specOps ...oci.SpecOpts) error {
	t.Helper()
	ctx := env.Context()
	c := env.Client()
	image, err := c.GetImage(ctx, env.Image)
	if err != nil {
		t.Fatal(err)
	}
	ops := append([]oci.SpecOpts{oci.WithImageConfig(image)}, specOps...)
	var rtOpts any
	if opts != nil {
		rtOpts = opts
	}
	cont, err := c.NewContainer(ctx, id,
		client.WithNewSnapshot(id, image),
		client.WithNewSpec(ops...),
		client.WithRuntime(rt, rtOpts))
	if err != nil {
		t.Fatalf("new container: %v", err)
	}
	defer cont.Delete(ctx, client.WithSnapshotCleanup)
	task, err := cont.NewTask(ctx, cio.NullIO)
	if err == nil {
		task.Delete(ctx, client.WithProcessKill)
	}
	return err
}

// assertHealthyAndClean: containerd answers, and no shim, mount or state is left.
func assertHealthyAndClean(t *testing.T, env *harness.Env) {
	t.Helper()
	if _, errOut, code := env.Ctr("version"); code != 0 {
		t.Fatalf("containerd unhealthy: %s", errOut)
	}
	waitNoShim(t, env)
	if m := harness.MountsUnder(env.Root); len(m) > 0 {
		t.Errorf("mounts left under the containerd root: %v", m)
	}
	if entries, _ := os.ReadDir(filepath.Join("/run/lxcri", env.Namespace)); len(entries) > 0 {
		t.Errorf("state left in /run/lxcri/%s: %d entries", env.Namespace, len(entries))
	}
	if cg := containerCgroups(env.Namespace); len(cg) > 0 {
		t.Errorf("container cgroups left: %v", cg)
	}
}
