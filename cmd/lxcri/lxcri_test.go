//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/lxcri/lxcri/runtime"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		pos      []string
		json, ok bool
	}{
		{[]string{"c1"}, []string{"c1"}, false, true},
		{[]string{"c1", "--json"}, []string{"c1"}, true, true},
		{[]string{"--json", "c1"}, []string{"c1"}, true, true},
		{[]string{"-n", "ns", "c1", "--json"}, []string{"c1"}, true, true},
		{[]string{"--", "--json"}, []string{"--json"}, false, true},
		{[]string{"c1", "--bogus"}, nil, false, false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		j := fs.Bool("json", false, "")
		fs.String("n", "", "")
		pos, err := parseInterspersed(fs, tc.args)
		if (err == nil) != tc.ok || (tc.ok && (!reflect.DeepEqual(pos, tc.pos) || *j != tc.json)) {
			t.Errorf("%v: pos %v json %v err %v; want %v %v ok=%v", tc.args, pos, *j, err, tc.pos, tc.json, tc.ok)
		}
	}
}

func TestMaskSecrets(t *testing.T) {
	for k, secret := range map[string]bool{
		"token_secret": true, "password": true, "ssh_private_key": true, "Secret": true,
		"token_secret_file": false, "token_id": false, "dataset": false, "ca_file": false, "key_path": false,
	} {
		if isSecretKey(k) != secret {
			t.Errorf("isSecretKey(%q) = %v", k, !secret)
		}
	}
	m := map[string]any{
		"backend": "lxc",
		"proxmox": map[string]any{"token_id": "root@pam!x", "token_secret": "s3cret", "token_secret_file": "/etc/x", "empty_secret": ""},
		"list":    []any{map[string]any{"password": "p"}},
	}
	mask(m)
	want := map[string]any{
		"backend": "lxc",
		"proxmox": map[string]any{"token_id": "root@pam!x", "token_secret": masked, "token_secret_file": "/etc/x", "empty_secret": ""},
		"list":    []any{map[string]any{"password": masked}},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("mask: %v, want %v", m, want)
	}
}

// TestConfigLayers: lxcri config shows the host file, runtime options over it, and an
// allowed annotation choosing the backend; a refused annotation is the shim's error.
func TestConfigLayers(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "host.toml")
	opts := filepath.Join(dir, "opts.toml")
	os.WriteFile(host, []byte("backend = \"crun\"\nallowed_annotations = [\"io.lxcri.backend\"]\n[zfs]\ndataset = \"tank/lxcri\"\n"), 0o644)
	os.WriteFile(opts, []byte("[crun]\nbinary = \"runc\"\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want []string
		err  string
	}{
		{[]string{"config"}, []string{"backend = 'crun'", "dataset = 'tank/lxcri'"}, ""},
		{[]string{"config", "--runtime-config", opts}, []string{"binary = 'runc'", "dataset = 'tank/lxcri'"}, ""},
		{[]string{"config", "--runtime-config-body", "backend = \"lxc\""}, []string{"backend = 'lxc'"}, ""},
		{[]string{"config", "--annotation", "io.lxcri.backend=lxc"}, []string{"backend = 'lxc'"}, ""},
		{[]string{"config", "--annotation", "io.lxcri.other=x"}, nil, "io.lxcri.other"},
		{[]string{"config", "--runtime-config-body", "bogus = 1"}, nil, "bogus"},
	} {
		t.Setenv(runtime.ConfigPathEnv, host)
		var out, errb strings.Builder
		err := run(context.Background(), tc.args, &out, &errb)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err %v, want one naming %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out.String())
			}
		}
	}
}

// TestCrunHybrid: crun's refusal of a hybrid host with cgroup2 controllers is a failure with
// the mount that fixes it while crun is the configured CLI, a warning otherwise, and no
// problem on a v2 or a hybrid host without cgroup2 controllers.
func TestCrunHybrid(t *testing.T) {
	for _, tc := range []struct {
		layout string
		ctrls  []string
		binary string
		status Status
		fix    string
	}{
		{"hybrid", []string{"hugetlb"}, "", Fail, "mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb"},
		{"hybrid", []string{"hugetlb"}, "/usr/bin/crun", Fail, `[crun] binary = "runc"`},
		{"hybrid", []string{"hugetlb"}, "runc", Warn, "mount -t cgroup"},
		{"hybrid", nil, "", OK, ""},
		{"v2", []string{"cpu", "memory"}, "", OK, ""},
	} {
		env := &checkEnv{cfg: runtime.DefaultConfig(), cgroupRoot: "/sys/fs/cgroup",
			cgroups: func() (string, []string, error) { return tc.layout, tc.ctrls, nil }}
		env.cfg.Crun.Binary = tc.binary
		rs := checkCrunHybrid(context.Background(), env)
		if len(rs) != 1 || rs[0].Status != tc.status || !strings.Contains(rs[0].Fix, tc.fix) {
			t.Errorf("%s %v %q: %+v, want %s with fix %q", tc.layout, tc.ctrls, tc.binary, rs, tc.status, tc.fix)
		}
	}
}

// syncBuffer is a progress writer the test reads while the runner writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
	// wrote is closed at the first write
	wrote chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() == 0 {
		close(s.wrote)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestProgress: a slow check shows which check runs while it runs and clears the line when
// it ends; a quick one writes nothing.
func TestProgress(t *testing.T) {
	buf := &syncBuffer{wrote: make(chan struct{})}
	r := &runner{progress: buf, progressAfter: 0}
	slow := check{backend: "zfs", name: "pool", slow: true, run: func(ctx context.Context, _ *checkEnv) []Result {
		<-buf.wrote // finish only once the progress line is out
		return []Result{{Backend: "zfs", Name: "pool", Status: OK}}
	}}
	quick := check{backend: "host", name: "q", run: func(context.Context, *checkEnv) []Result {
		return []Result{{Backend: "host", Name: "q", Status: Warn}}
	}}
	rs := r.run(context.Background(), &checkEnv{}, []check{quick, slow})
	if len(rs) != 2 || worst(rs) != Warn {
		t.Fatalf("results %+v", rs)
	}
	out := buf.String()
	if !strings.Contains(out, "checking zfs: pool") || strings.Contains(out, "checking host") || !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("progress output %q", out)
	}
}

// TestProxmoxSection: without a [proxmox] section (or with the Config of a build that has
// none) there is nothing to check.
func TestProxmoxSection(t *testing.T) {
	if _, ok := proxmoxSection(runtime.DefaultConfig()); ok {
		t.Error("an empty configuration has a [proxmox] section")
	}
	if rs := checkProxmox(context.Background(), &checkEnv{cfg: runtime.DefaultConfig()}); len(rs) != 0 {
		t.Errorf("proxmox checks without [proxmox]: %+v", rs)
	}
}

// TestCheckPVE: the PVE checks against an HTTPS server that accepts one API token and lets
// it list one node's containers: the right token is ok with the CA file or the certificate's
// fingerprint; a wrong secret, a wrong fingerprint, an open secret file and a node the token
// may not see each fail with the reason.
func TestCheckPVE(t *testing.T) {
	const tokenID, secret = "root@pam!lxcri", "0a1b2c3d-s3cret"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "PVEAPIToken="+tokenID+"="+secret {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api2/json/version":
			io.WriteString(w, `{"data":{"version":"9.1"}}`)
		case "/api2/json/nodes/pve1/lxc":
			io.WriteString(w, `{"data":[]}`)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	sum := sha256.Sum256(srv.Certificate().Raw)
	fp := hex.EncodeToString(sum[:])
	good := filepath.Join(dir, "secret")
	os.WriteFile(good, []byte(secret+"\n"), 0o600)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("wrong"), 0o600)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte(secret), 0o644)

	base := pveSettings{URL: srv.URL, Node: "pve1", TokenID: tokenID, TokenSecretFile: good, CAFile: ca}
	with := func(f func(*pveSettings)) pveSettings { s := base; f(&s); return s }
	for _, tc := range []struct {
		name   string
		s      pveSettings
		key    string
		status Status
		detail string
	}{
		{"ca file", base, "permissions", OK, "pve1"},
		{"fingerprint", with(func(s *pveSettings) { s.CAFile, s.Fingerprint = "", fp }), "TLS", OK, "fingerprint"},
		{"insecure", with(func(s *pveSettings) { s.CAFile, s.Insecure = "", true }), "TLS", Warn, "insecure_skip_verify"},
		{"system CAs", with(func(s *pveSettings) { s.CAFile = "" }), "reachability", Fail, "certificate"},
		{"wrong fingerprint", with(func(s *pveSettings) { s.CAFile, s.Fingerprint = "", strings.Repeat("ab", 32) }), "reachability", Fail, "fingerprint"},
		{"wrong token", with(func(s *pveSettings) { s.TokenSecretFile = bad }), "token", Fail, "refuses token " + tokenID},
		{"open secret file", with(func(s *pveSettings) { s.TokenSecretFile = open }), "token secret", Fail, "readable by group or others"},
		{"other node", with(func(s *pveSettings) { s.Node = "pve2" }), "permissions", Fail, "403"},
		{"incomplete", with(func(s *pveSettings) { s.TokenID = "" }), "configuration", Fail, "token_id"},
	} {
		rs := checkPVE(context.Background(), tc.s)
		var got *Result
		for i := range rs {
			if rs[i].Name == tc.key {
				got = &rs[i]
			}
			if strings.Contains(rs[i].Detail, secret) || strings.Contains(rs[i].Fix, secret) {
				t.Errorf("%s: the secret is in %+v", tc.name, rs[i])
			}
		}
		if got == nil || got.Status != tc.status || !strings.Contains(got.Detail, tc.detail) {
			t.Errorf("%s: %q is %+v, want %s with %q (all: %+v)", tc.name, tc.key, got, tc.status, tc.detail, rs)
		}
	}
}

// TestSummary: each backend's verdict is the worst of its lines and the host's.
func TestSummary(t *testing.T) {
	rs := []Result{
		{Backend: "host", Status: OK}, {Backend: "lxc", Status: OK}, {Backend: "crun", Status: Warn},
		{Backend: "crun", Status: Fail}, {Backend: "zfs", Status: Warn},
	}
	if got := strings.Join(summary(rs), ", "); got != "lxc ok, crun fail, zfs warn" {
		t.Errorf("summary %q", got)
	}
	rs[0].Status = Warn
	if got := strings.Join(summary(rs), ", "); got != "lxc warn, crun fail, zfs warn" {
		t.Errorf("summary with a host warning %q", got)
	}
	var out strings.Builder
	printResults(&out, rs)
	if !strings.Contains(out.String(), "1 ok, 3 warn, 1 fail; by backend (with the host's lines): lxc warn, crun fail, zfs warn\n") {
		t.Errorf("printed:\n%s", out.String())
	}
}
