//go:build linux

package shim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestProxmoxLXCCRI: Kubernetes' path onto PVE CTs, through containerd's CRI plugin and the
// handler contrib/containerd ships for the RuntimeClass lxcri-proxmox-lxc. The pod sandbox
// and its container are CTs; the files CRI bind-mounts at /etc/hosts, /etc/resolv.conf and
// /etc/hostname reach the container's CT with their content, stop and remove leave no CT,
// and a host-path bind mount is refused naming the field.
func TestProxmoxLXCCRI(t *testing.T) {
	handler, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "contrib", "containerd", "lxcri-proxmox-lxc.toml"))
	if err != nil {
		t.Fatal(err)
	}
	env := startPVE(t, harness.WithExtraNamespaces("k8s.io"), harness.WithSandboxImage(pauseImage), harness.WithConfig(string(handler)))
	importPause(t, env.In("k8s.io"))

	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pod := write("pod.json", `{"metadata":{"name":"pve-pod","namespace":"default","uid":"u-pve"},
		"hostname":"pve-pod-host",
		"dns_config":{"servers":["192.0.2.53"],"searches":["pods.example"]},
		"port_mappings":[],
		"linux":{"security_context":{"namespace_options":{"network":2}}}}`)
	// Host network: the pod's /etc/hosts is the node's; a pod network's would be CRI's own.
	ctr := write("ctr.json", `{"metadata":{"name":"c1"},"image":{"image":"`+env.Image+`"},
		"command":["sleep","1000"],"linux":{}}`)
	hostDir := t.TempDir()
	bad := write("bad.json", `{"metadata":{"name":"c2"},"image":{"image":"`+env.Image+`"},
		"command":["sleep","1000"],"linux":{},
		"mounts":[{"container_path":"/data","host_path":"`+hostDir+`"}]}`)

	crictl := func(args ...string) string {
		t.Helper()
		out, errOut, code := env.Crictl(args...)
		if code != 0 {
			t.Fatalf("crictl %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	podID := crictl("runp", "--runtime", "lxcri-proxmox-lxc", pod)
	removed := false
	defer func() {
		if !removed {
			env.Crictl("stopp", podID)
			env.Crictl("rmp", "-f", podID)
		}
	}()
	cid := crictl("create", podID, ctr, pod)
	crictl("start", cid)
	if n := len(env.cts(t)); n != 2 {
		t.Errorf("%d CTs for a pod of one container, want 2 (its sandbox and its container)", n)
	}

	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	if out := crictl("exec", cid, "cat", "/etc/hosts"); out != strings.TrimSpace(string(hosts)) {
		t.Errorf("/etc/hosts in the container:\n%s\nwant the pod's (the node's, with host network):\n%s", out, hosts)
	}
	if out := crictl("exec", cid, "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 192.0.2.53") || !strings.Contains(out, "search pods.example") {
		t.Errorf("/etc/resolv.conf in the container: %q, want the pod's DNS config", out)
	}
	if out := crictl("exec", cid, "hostname"); out != "pve-pod-host" {
		t.Errorf("hostname in the container: %q, want pve-pod-host", out)
	}
	if out := crictl("exec", cid, "cat", "/etc/hostname"); out != "pve-pod-host" {
		t.Errorf("/etc/hostname in the container: %q, want pve-pod-host", out)
	}

	// A host path reaches a CT only as root@pam's mount point: refused when the task is
	// made (CRI makes it at start), naming the field.
	bid := crictl("create", podID, bad, pod)
	out, errOut, code := env.Crictl("start", bid)
	if code == 0 {
		t.Errorf("crictl start with a host-path mount succeeded: %s", out)
	} else if !strings.Contains(errOut, "mounts[") || !strings.Contains(errOut, "/data") || !strings.Contains(errOut, "root@pam") {
		t.Errorf("crictl start with a host-path mount: %s, want an error naming mounts[i], /data and root@pam", errOut)
	}
	crictl("rm", bid)
	if n := len(env.cts(t)); n != 2 {
		t.Errorf("%d CTs after the refused container, want 2", n)
	}

	crictl("stop", cid)
	crictl("rm", cid)
	crictl("stopp", podID)
	crictl("rmp", podID)
	removed = true
	env.assertNoCT(t)
	waitNoShim(t, env.Env)
}
