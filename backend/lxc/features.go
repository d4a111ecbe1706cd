package lxc

import (
	"context"
	"os"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/lxcri/lxcri/backend/lxcstart"
)

// Features says what the lxc backend maps from an OCI spec, in runtime-spec's features
// form, read from the same tables the translator uses: containerd and the kubelet then
// ask only for what works here (no recursive read-only or idmapped mounts: liblxc 5 has
// neither, so "rro" is not offered and CRI falls back to plain read-only mounts).
func (b *backend) Features(ctx context.Context) (*features.Features, error) {
	yes, no := true, false
	apparmor, selinux := hostAppArmor(), hostSELinux()
	f := &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  supportedMountOptions(),
		Linux: &features.Linux{
			Capabilities: append([]string(nil), lxcstart.CapNames...),
			Cgroup: &features.Cgroup{
				V1:      &yes,
				V2:      &yes,
				Systemd: &no,
			},
			Apparmor: &features.Apparmor{Enabled: &apparmor},
			Selinux:  &features.Selinux{Enabled: &selinux},
			// Mounts are made by liblxc, without idmap support.
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &no}},
			IntelRdt:        &features.IntelRdt{Enabled: &no},
		},
	}
	for _, ns := range nsOrder {
		f.Linux.Namespaces = append(f.Linux.Namespaces, string(ns))
	}
	sc := &features.Seccomp{Enabled: &yes}
	for _, a := range []specs.LinuxSeccompAction{specs.ActKill, specs.ActKillThread, specs.ActTrap, specs.ActErrno, specs.ActAllow} {
		sc.Actions = append(sc.Actions, string(a))
	}
	for op := range seccompOps {
		sc.Operators = append(sc.Operators, string(op))
	}
	slices.Sort(sc.Operators)
	for arch := range seccompSections {
		sc.Archs = append(sc.Archs, string(arch))
	}
	slices.Sort(sc.Archs)
	f.Linux.Seccomp = sc
	return f, nil
}

// hostAppArmor and hostSELinux tell whether the host can apply a profile or label (see
// checkHostLSM, which refuses them otherwise).
func hostAppArmor() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

func hostSELinux() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}

// supportedMountOptions are the mount options the translator maps and does not refuse
// (shared propagation is mapped by liblxc's flag table but refused at Create).
func supportedMountOptions() []string {
	var out []string
	for _, o := range sortedKeys(lxcMountFlags) {
		if _, refused := unsupportedMountOptions[o]; !refused {
			out = append(out, o)
		}
	}
	return out
}
