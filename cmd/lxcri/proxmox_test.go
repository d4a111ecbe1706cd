//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/proxmox/pvesim"
	"github.com/lxcri/lxcri/runtime"
)

// startPVE runs the PVE emulator over HTTPS and returns it with the [proxmox] section it
// wrote, loaded as lxcri loads its configuration.
func startPVE(t *testing.T) (*pvesim.Server, runtime.ProxmoxConfig) {
	t.Helper()
	s, err := pvesim.New(pvesim.Config{Dir: t.TempDir(), AuthFailDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cfg := runtime.DefaultConfig()
	if err := cfg.MergeFile(filepath.Join(s.Dir(), "lxcri.toml"), true); err != nil {
		t.Fatal(err)
	}
	return s, cfg.Proxmox
}

// leafFingerprint is the SHA-256 fingerprint of the certificate a TLS server presents.
func leafFingerprint(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return proxmox.Fingerprint(conn.ConnectionState().PeerCertificates[0].Raw)
}

// closedURL is an https URL on loopback where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "https://" + addr
}

// TestCheckPVE: `lxcri check`'s PVE lines against the emulator. A good section passes every
// line; each broken piece fails the line that names it (and the secret is in no line).
func TestCheckPVE(t *testing.T) {
	s, good := startPVE(t)
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("00000000-0000-0000-0000-000000000000\n"), 0o600)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte(s.TokenSecret()), 0o644)
	fp := leafFingerprint(t, s.Addr())
	unreachable := closedURL(t)

	with := func(f func(*runtime.ProxmoxConfig)) runtime.ProxmoxConfig { c := good; f(&c); return c }
	all := []string{"token secret", "reachability", "TLS", "token", "node", "storage", "template storage", "permissions"}
	for _, tc := range []struct {
		name   string
		cfg    runtime.ProxmoxConfig
		fault  *pvesim.Fault
		line   string // the line that fails (or warns); "" when all pass
		status Status
		detail string
	}{
		{name: "ca file", cfg: good},
		{name: "fingerprint", cfg: with(func(c *runtime.ProxmoxConfig) { c.CAFile, c.Fingerprint = "", fp })},
		{name: "insecure", cfg: with(func(c *runtime.ProxmoxConfig) { c.CAFile, c.InsecureSkipVerify = "", true }), line: "TLS", status: Warn, detail: "insecure_skip_verify"},
		{name: "system CAs", cfg: with(func(c *runtime.ProxmoxConfig) { c.CAFile = "" }), line: "TLS", status: Fail, detail: "certificate signed by unknown authority"},
		{name: "wrong fingerprint", cfg: with(func(c *runtime.ProxmoxConfig) { c.CAFile, c.Fingerprint = "", strings.Repeat("AB:", 31)+"AB" }), line: "TLS", status: Fail, detail: "fingerprint"},
		{name: "bad token", cfg: with(func(c *runtime.ProxmoxConfig) { c.TokenSecretFile = wrong }), line: "token", status: Fail, detail: "401 authentication failure (PVE rejected API token " + good.TokenID},
		{name: "unknown token id", cfg: with(func(c *runtime.ProxmoxConfig) { c.TokenID = "lxcri@pve!other" }), line: "token", status: Fail, detail: "PVE rejected API token lxcri@pve!other"},
		{name: "open secret file", cfg: with(func(c *runtime.ProxmoxConfig) { c.TokenSecretFile = open }), line: "token secret", status: Fail, detail: "group and others must have no access"},
		{name: "unreachable", cfg: with(func(c *runtime.ProxmoxConfig) { c.URL = unreachable }), line: "reachability", status: Fail, detail: "cannot reach the PVE API at " + unreachable},
		{name: "unknown node", cfg: with(func(c *runtime.ProxmoxConfig) { c.Node = "pve2" }), line: "node", status: Fail, detail: "node pve2 is not a node of this cluster (nodes: " + s.Node() + ")"},
		{name: "unknown storage", cfg: with(func(c *runtime.ProxmoxConfig) { c.Storage = "local-zfs" }), line: "storage", status: Fail, detail: `storage "local-zfs" does not exist on node ` + s.Node()},
		{name: "template storage without vztmpl", cfg: with(func(c *runtime.ProxmoxConfig) { c.TemplateStorage = pvesim.DefaultStorage }), line: "template storage", status: Fail, detail: `template_storage "simpool" does not hold vztmpl`},
		{name: "no permission", cfg: good, fault: &pvesim.Fault{Method: "GET", Path: "^/nodes/[^/]+/lxc$", Kind: pvesim.FaultError, Status: 403, Message: "Permission check failed (/vms, VM.Audit)"},
			line: "permissions", status: Fail, detail: "403 Permission check failed (/vms, VM.Audit)"},
		{name: "incomplete", cfg: with(func(c *runtime.ProxmoxConfig) { c.TokenID = "" }), line: "configuration", status: Fail, detail: "token_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.ClearFaults()
			if tc.fault != nil {
				if err := s.AddFault(*tc.fault); err != nil {
					t.Fatal(err)
				}
				defer s.ClearFaults()
			}
			rs := checkPVE(context.Background(), &tc.cfg)
			byName := map[string]Result{}
			for _, r := range rs {
				byName[r.Name] = r
				if r.Backend != "proxmox" {
					t.Errorf("line of backend %q: %+v", r.Backend, r)
				}
				if strings.Contains(r.Detail+r.Fix, s.TokenSecret()) {
					t.Errorf("the secret is in %+v", r)
				}
			}
			for _, name := range all {
				r, ok := byName[name]
				if name == tc.line {
					if !ok || r.Status != tc.status || !strings.Contains(r.Detail, tc.detail) {
						t.Errorf("%q is %+v, want %s with %q (all: %+v)", name, r, tc.status, tc.detail, rs)
					}
					if r.Status == Fail && r.Fix == "" && name != "permissions" {
						t.Errorf("%q fails without a fix: %+v", name, r)
					}
					if r.Status == Fail {
						break // the lines after the first failure are not checked
					}
					continue
				}
				if tc.line == "configuration" {
					if ok {
						t.Errorf("an invalid section has a %q line: %+v", name, r)
					}
					continue
				}
				if !ok || r.Status != OK {
					t.Errorf("%q is %+v, want ok (all: %+v)", name, r, rs)
				}
			}
			if tc.line == "configuration" {
				if r, ok := byName["configuration"]; !ok || r.Status != Fail || !strings.Contains(r.Detail, tc.detail) {
					t.Errorf("configuration is %+v, want a failure naming %q", r, tc.detail)
				}
			}
		})
	}
}

// TestCheckProxmoxWhenNamed: the PVE checks run when the configuration chooses a Proxmox
// backend or has a [proxmox] section, and a Proxmox backend without the section fails
// saying where it is chosen.
func TestCheckProxmoxWhenNamed(t *testing.T) {
	ctx := context.Background()
	if rs := checkProxmox(ctx, &checkEnv{cfg: runtime.DefaultConfig()}); len(rs) != 0 {
		t.Errorf("PVE checks without a Proxmox backend or [proxmox]: %+v", rs)
	}
	cfg := runtime.DefaultConfig()
	cfg.Backend = "proxmox-lxc"
	cfg.Routes = []runtime.Route{{Image: "^vm/", Backend: "proxmox-vm"}}
	rs := checkProxmox(ctx, &checkEnv{cfg: cfg})
	if len(rs) != 1 || rs[0].Name != "configuration" || rs[0].Status != Fail ||
		!strings.Contains(rs[0].Detail, `backend = "proxmox-lxc", [[route]] 1 (backend proxmox-vm) needs a [proxmox] section`) {
		t.Errorf("a Proxmox backend without [proxmox]: %+v", rs)
	}
	_, pc := startPVE(t)
	cfg.Proxmox = pc
	rs = checkProxmox(ctx, &checkEnv{cfg: cfg})
	if len(rs) == 0 || rs[len(rs)-1].Name != "permissions" || rs[len(rs)-1].Status != OK {
		t.Errorf("a complete [proxmox] section: %+v", rs)
	}
}
