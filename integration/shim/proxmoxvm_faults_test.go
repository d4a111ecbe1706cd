//go:build linux

package shim_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/proxmox/pvesim"
)

// TestProxmoxVMBadInput: a template that cannot serve, a guest whose agent never answers
// and a spec a VM cannot honour are each a clear error with the right code, through
// containerd's client and through ctr; no VM is left on the node, nothing in containerd,
// and the next task runs.
func TestProxmoxVMBadInput(t *testing.T) {
	env, api, sim := startPVEVMSim(t)
	ctx := context.Background()
	removedRe := regexp.MustCompile(`VM ([0-9]+) \(removed again\)`)

	for _, tc := range []struct {
		name    string
		config  string                  // runtime options' TOML; "": none
		specOps []oci.SpecOpts          // for the client's create
		ctrArgs []string                // ctr run's extra flags, for the same mistake through ctr
		setup   func(*testing.T) func() // breaks the node; returns the repair
		is      func(error) bool
		code    string
		msg     []string
	}{
		{
			name: "template-missing", config: "[proxmox-vm]\ntemplate_vmid = 4242\n",
			is: errdefs.IsFailedPrecondition, code: "FailedPrecondition",
			msg: []string{"template_vmid 4242: no such VM on node"},
		},
		{
			name: "template-without-agent",
			setup: func(t *testing.T) func() {
				if err := api.SetVMConfig(ctx, pvesim.TemplateVMID, map[string]any{"agent": "0"}); err != nil {
					t.Fatal(err)
				}
				return func() {
					if err := api.SetVMConfig(ctx, pvesim.TemplateVMID, map[string]any{"agent": "1"}); err != nil {
						t.Fatal(err)
					}
				}
			},
			is: errdefs.IsFailedPrecondition, code: "FailedPrecondition",
			msg: []string{"template_vmid 9000 has no QEMU guest agent enabled"},
		},
		{
			name: "agent-never-answers", config: "[proxmox-vm]\nagent_timeout = \"2s\"\n",
			setup: func(t *testing.T) func() { return hideAgent(t, sim) },
			is:    errdefs.IsDeadlineExceeded, code: "DeadlineExceeded",
			msg: []string{"wait for the guest agent of VM", "no answer within 2s", "QEMU guest agent is not running", "(removed again)"},
		},
		{
			name: "sysctl",
			specOps: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
				return nil
			}},
			is: errdefs.IsInvalidArgument, code: "InvalidArgument",
			msg: []string{"linux.sysctl", "the launcher sets no sysctls in the guest"},
		},
		{
			name: "cpuset",
			specOps: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: "0"}
				return nil
			}},
			ctrArgs: []string{"--cpuset-cpus", "0"},
			is:      errdefs.IsInvalidArgument, code: "InvalidArgument",
			msg: []string{"linux.resources.cpu.cpus", "PVE's affinity is root@pam only"},
		},
		{
			name:    "bind-mount",
			specOps: []oci.SpecOpts{oci.WithMounts([]specs.Mount{{Destination: "/mnt/host", Type: "bind", Source: "/tmp", Options: []string{"rbind", "ro"}}})},
			ctrArgs: []string{"--mount", "type=bind,src=/tmp,dst=/mnt/host,options=rbind:ro"},
			is:      errdefs.IsInvalidArgument, code: "InvalidArgument",
			msg: []string{"mounts[", "/mnt/host: a VM's guest has no share of this host's paths"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				defer tc.setup(t)()
			}
			var opts *runtimeoptions.Options
			var ctrArgs []string
			if tc.config != "" {
				opts = &runtimeoptions.Options{ConfigBody: []byte(tc.config)}
				cfg := filepath.Join(t.TempDir(), "lxcri.toml")
				if err := os.WriteFile(cfg, []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
				ctrArgs = append(ctrArgs, "--runtime-config-path", cfg)
			}
			err := createTask(t, env, "vm-bad-"+tc.name, opts, tc.specOps...)
			if err == nil || !tc.is(err) {
				t.Errorf("client: got %v, want a %s error", err, tc.code)
			}
			for _, m := range tc.msg {
				if err != nil && !strings.Contains(err.Error(), m) {
					t.Errorf("client: error %q lacks %q", err, m)
				}
			}
			t.Logf("client: %v", err)
			if m := removedRe.FindStringSubmatch(errString(err)); m != nil {
				n, _ := strconv.Atoi(m[1])
				if !vmListed(t, api, n) {
					t.Logf("VM %d, named in the error, is not listed in /nodes/{node}/qemu", n)
				} else {
					t.Errorf("VM %d, said to be removed, is still listed", n)
				}
			}
			if ids := vmsOf(t, api); len(ids) != 0 {
				t.Errorf("VMs %v left on the node by a failed create", ids)
			}
			assertHealthyAndClean(t, env)

			// The same mistake through ctr: the user reads the reason.
			if tc.specOps != nil && tc.ctrArgs == nil {
				return
			}
			args := append(append([]string{"run", "--rm", "--runtime", rt}, ctrArgs...), tc.ctrArgs...)
			args = append(args, env.Image, "vm-bad-ctr-"+tc.name, "true")
			_, errOut, code := env.Ctr(args...)
			if code == 0 {
				t.Errorf("ctr run succeeded; want an error saying %q", tc.msg)
			}
			for _, m := range tc.msg {
				if !strings.Contains(errOut, m) {
					t.Errorf("ctr's error %q lacks %q", errOut, m)
				}
			}
			if ids := vmsOf(t, api); len(ids) != 0 {
				t.Errorf("VMs %v left on the node by ctr run", ids)
			}
			if ids := ctrOK(t, env, "container", "ls", "-q"); strings.TrimSpace(ids) != "" {
				t.Errorf("containers left in containerd: %q", ids)
			}
			assertHealthyAndClean(t, env)
		})
	}

	// Nothing is lost: once repaired, the node and the shim serve the next task.
	if out, errOut, code := env.Ctr("run", "--rm", "--runtime", rt, env.Image, "vm-after", "echo", "after"); code != 0 || out != "after\n" {
		t.Errorf("the run after the faults: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	if ids := vmsOf(t, api); len(ids) != 0 {
		t.Errorf("VMs %v after ctr run --rm", ids)
	}
}

// hideAgent takes the guest agent out of the template's disk, which a linked clone copies:
// the clone's guest boots without one, as a template whose qemu-guest-agent is not
// installed (pvesim's agent answers only for a guest with /usr/sbin/qemu-ga). It returns
// the repair.
func hideAgent(t *testing.T, sim *pvesim.Server) func() {
	t.Helper()
	ga := filepath.Join(sim.Dir(), "storage", pvesim.DefaultStorage, "images", strconv.Itoa(pvesim.TemplateVMID),
		"base-"+strconv.Itoa(pvesim.TemplateVMID)+"-disk-0", "usr/sbin/qemu-ga")
	hidden := ga + ".hidden"
	if err := os.Rename(ga, hidden); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Rename(hidden, ga); err != nil {
			t.Fatal(err)
		}
	}
}

// vmListed says whether VM vmid is in /nodes/{node}/qemu.
func vmListed(t *testing.T, api *proxmox.Client, vmid int) bool {
	t.Helper()
	vms, err := api.VMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vms {
		if int(v.VMID) == vmid {
			return true
		}
	}
	return false
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
