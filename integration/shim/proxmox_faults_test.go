//go:build linux

package shim_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lxcri/lxcri/proxmox/pvesim"
)

// testProxmoxFaults runs `ctr run --rm` on proxmox-lxc while the emulated node fails in
// the ways a real one does: each failure is a clear error through ctr and containerd, no
// CT is left on the node, no task or container in containerd, and the next task runs.
func testProxmoxFaults(t *testing.T, env *pveEnv) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	urlRe := regexp.MustCompile(`(?m)^url = .*$`)

	lxcPath := `^/nodes/[^/]+/lxc$`
	startPath := `^/nodes/[^/]+/lxc/[0-9]+/status/start$`
	for _, tc := range []struct {
		name   string
		faults []pvesim.Fault
		config func(string) string // the shim's configuration for the run; nil: the env's
		// want are words of ctr's error; none: the run succeeds
		want []string
	}{
		{
			name:   "unreachable",
			config: func(c string) string { return urlRe.ReplaceAllString(c, fmt.Sprintf("url = %q", "https://"+closed)) },
			want:   []string{"connection refused"},
		},
		{
			name:   "unauthorized",
			faults: []pvesim.Fault{{Kind: pvesim.FaultUnauthorized}},
			want:   []string{"401", "authentication failure"},
		},
		{
			name:   "5xx-then-success",
			faults: []pvesim.Fault{{Method: "POST", Path: lxcPath, Kind: pvesim.FaultError, Status: 500, Message: "temporary trouble", Times: 2}},
		},
		{
			name:   "create-task-fails",
			faults: []pvesim.Fault{{Method: "POST", Path: lxcPath, Kind: pvesim.FaultTaskFail, Message: "storage simpool is full", Times: 1}},
			want:   []string{"vzcreate", "storage simpool is full"},
		},
		{
			name:   "start-task-fails",
			faults: []pvesim.Fault{{Method: "POST", Path: startPath, Kind: pvesim.FaultTaskFail, Message: "no cgroup for the CT", Times: 1}},
			want:   []string{"vzstart", "no cgroup for the CT"},
		},
		{
			name:   "start-task-past-deadline",
			config: func(c string) string { return strings.Replace(c, "[proxmox]\n", "[proxmox]\ntimeout = \"2s\"\n", 1) },
			faults: []pvesim.Fault{{Method: "POST", Path: startPath, Kind: pvesim.FaultTaskHang, Times: 1}},
			want:   []string{"vzstart", "still running after 2s"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer env.sim.ClearFaults()
			args := []string{"run", "--rm", "--runtime", rt}
			if tc.config != nil {
				cfg := filepath.Join(t.TempDir(), "lxcri.toml")
				if err := os.WriteFile(cfg, []byte(tc.config(env.config)), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--runtime-config-path", cfg)
			}
			for _, f := range tc.faults {
				if err := env.sim.AddFault(f); err != nil {
					t.Fatal(err)
				}
			}
			id := "pve-fault-" + tc.name
			out, errOut, code := env.Ctr(append(args, env.Image, id, "echo", "hi")...)
			// Faults given a count are dropped once used up: any left was never hit.
			for _, f := range env.faults(t) {
				if f.Times > 0 {
					t.Errorf("fault never hit: %+v", f)
				}
			}
			env.sim.ClearFaults()
			if len(tc.want) == 0 {
				if code != 0 || out != "hi\n" {
					t.Errorf("exit %d, stdout %q, stderr %s; want the run to succeed once PVE recovers", code, out, errOut)
				}
			} else {
				if code == 0 {
					t.Errorf("the run succeeded (stdout %q); want an error with %q", out, tc.want)
				}
				for _, w := range tc.want {
					if !strings.Contains(errOut, w) {
						t.Errorf("ctr's error %q lacks %q", errOut, w)
					}
				}
				t.Logf("%s: %s", tc.name, strings.TrimSpace(errOut))
			}
			env.assertNoCT(t)
			if ids := ctrOK(t, env.Env, "container", "ls", "-q"); strings.Contains(ids, id) {
				t.Errorf("container %s is left in containerd: %q", id, ids)
				env.Ctr("container", "rm", id)
			}
			// Nothing is lost: the node and the shim serve the next task.
			if out, errOut, code := env.Ctr("run", "--rm", "--runtime", rt, env.Image, id+"-after", "echo", "after"); code != 0 || out != "after\n" {
				t.Errorf("the run after the fault: exit %d, stdout %q, stderr %s", code, out, errOut)
			}
			env.assertNoCT(t)
		})
	}
}

// faults asks the emulator, over its admin endpoint, for the injected faults in force.
func (e *pveEnv) faults(t *testing.T) []pvesim.Fault {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.sim.CAPEM())
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := strings.TrimSuffix(e.sim.URL(), "/api2/json")
	req, err := http.NewRequest("GET", base+"/pvesim/faults", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+e.sim.TokenID()+"="+e.sim.TokenSecret())
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []pvesim.Fault `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /pvesim/faults: %s: %v", resp.Status, err)
	}
	return body.Data
}
