package proxmox

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/proxmox/pvesim"
	"github.com/lxcri/lxcri/runtime"
)

// sim is an emulated node over real HTTPS, with the requests it served counted.
type sim struct {
	*pvesim.Server
	mu   sync.Mutex
	reqs []string
}

func startSim(t *testing.T) *sim {
	t.Helper()
	s := &sim{}
	srv, err := pvesim.New(pvesim.Config{Dir: t.TempDir(), AuthFailDelay: -1, Logf: func(format string, args ...any) {
		s.mu.Lock()
		s.reqs = append(s.reqs, fmt.Sprintf(format, args...))
		s.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	s.Server = srv
	return s
}

// count is how many logged requests mention all of the given words.
func (s *sim) count(words ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
outer:
	for _, r := range s.reqs {
		for _, w := range words {
			if !strings.Contains(r, w) {
				continue outer
			}
		}
		n++
	}
	return n
}

// config is the [proxmox] section the emulator wrote for its clients, read as lxcri reads
// its configuration files.
func (s *sim) config(t *testing.T) runtime.ProxmoxConfig {
	t.Helper()
	c := runtime.DefaultConfig()
	if err := c.MergeFile(filepath.Join(s.Dir(), "lxcri.toml"), true); err != nil {
		t.Fatal(err)
	}
	return c.Proxmox
}

// fast keeps retries and waits short, so fault tests take milliseconds.
func fast(c *Client) *Client {
	c.retry = retryPolicy{attempts: 4, initial: 10 * time.Millisecond, max: 40 * time.Millisecond}
	return c
}

func newClient(t *testing.T, cfg runtime.ProxmoxConfig) *Client {
	t.Helper()
	c, err := New(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fast(c)
}

// noSecret fails the test when err's text holds the token's secret.
func noSecret(t *testing.T, s *sim, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), s.TokenSecret()) {
		t.Fatalf("the error holds the token secret: %v", err)
	}
}

func TestVersionOverVerifiedTLS(t *testing.T) {
	s := startSim(t)
	c := newClient(t, s.config(t))
	v, err := c.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v.Version == "" {
		t.Fatalf("version %+v", v)
	}
	if id, err := c.NextID(context.Background()); err != nil || id < 100 {
		t.Fatalf("nextid %d %v", id, err)
	}
}

func TestTLS(t *testing.T) {
	s := startSim(t)
	conn, err := tls.Dial("tcp", s.Addr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0].Raw
	conn.Close()

	pinned := s.config(t)
	pinned.CAFile = ""
	pinned.Fingerprint = Fingerprint(leaf)
	if _, err := newClient(t, pinned).Version(context.Background()); err != nil {
		t.Fatalf("pinned fingerprint: %v", err)
	}

	wrong := pinned
	wrong.Fingerprint = strings.Repeat("AB:", 31) + "AB"
	_, err = newClient(t, wrong).Version(context.Background())
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "does not match [proxmox] fingerprint") {
		t.Fatalf("wrong fingerprint: %v", err)
	}

	// Without ca_file or fingerprint the system roots verify the node, which they cannot.
	system := s.config(t)
	system.CAFile = ""
	_, err = newClient(t, system).Version(context.Background())
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "TLS verification") || !strings.Contains(err.Error(), "set [proxmox] ca_file") {
		t.Fatalf("unverifiable certificate: %v", err)
	}
	if n := s.count("/version"); n != 1 {
		t.Errorf("%d requests served, want the 1 over a verified connection (a TLS failure is neither served nor retried)", n)
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// fault is injected before the call; nil for none
		fault *pvesim.Fault
		edit  func(*testing.T, *sim, *runtime.ProxmoxConfig)
		call  func(*Client) error
		is    func(error) bool
		msg   []string
		// served counts the requests the emulator served for the call: how often it
		// was tried
		served []string
		times  int
	}{
		{
			name: "unreachable",
			edit: func(t *testing.T, s *sim, c *runtime.ProxmoxConfig) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				c.URL = "https://" + ln.Addr().String()
				ln.Close()
			},
			call: func(c *Client) error { _, err := c.Version(ctx); return err },
			is:   errdefs.IsUnavailable,
			msg:  []string{"proxmox: GET /version: cannot reach the PVE API at https://127.0.0.1:", "connection refused", "(after 4 attempts)"},
		},
		{
			name:   "401",
			fault:  &pvesim.Fault{Path: "^/version$", Kind: pvesim.FaultUnauthorized},
			call:   func(c *Client) error { _, err := c.Version(ctx); return err },
			is:     errdefs.IsUnauthorized,
			msg:    []string{"proxmox: GET /version: 401", "PVE rejected API token root@pam!lxcri", "token_secret_file"},
			served: []string{"/version"}, times: 1,
		},
		{
			name: "wrong secret",
			edit: func(t *testing.T, s *sim, c *runtime.ProxmoxConfig) {
				p := filepath.Join(t.TempDir(), "secret")
				os.WriteFile(p, []byte("00000000-0000-0000-0000-000000000000"), 0o600)
				c.TokenSecretFile = p
			},
			call:   func(c *Client) error { _, err := c.Version(ctx); return err },
			is:     errdefs.IsUnauthorized,
			msg:    []string{"401", "PVE rejected API token"},
			served: []string{"/version"}, times: 1,
		},
		{
			name:   "500 then success",
			fault:  &pvesim.Fault{Path: "^/version$", Kind: pvesim.FaultError, Status: 500, Message: "got timeout", Times: 2},
			call:   func(c *Client) error { _, err := c.Version(ctx); return err },
			served: []string{"/version"}, times: 3,
		},
		{
			name:   "503 persists",
			fault:  &pvesim.Fault{Path: "^/cluster/nextid$", Kind: pvesim.FaultError, Status: 503, Message: "service unavailable"},
			call:   func(c *Client) error { _, err := c.NextID(ctx); return err },
			is:     errdefs.IsUnavailable,
			msg:    []string{"proxmox: GET /cluster/nextid: 503 service unavailable (after 4 attempts)"},
			served: []string{"/cluster/nextid"}, times: 4,
		},
		{
			name:   "missing CT is NotFound, not retried",
			call:   func(c *Client) error { _, err := c.CTStatus(ctx, 4242); return err },
			is:     errdefs.IsNotFound,
			msg:    []string{"/lxc/4242/status/current: 500", "4242.conf' does not exist"},
			served: []string{"/lxc/4242/status/current"}, times: 1,
		},
		{
			name:   "400 is InvalidArgument, not retried",
			call:   func(c *Client) error { _, err := c.Contents(ctx, "local", "bogus"); return err },
			is:     errdefs.IsInvalidArgument,
			msg:    []string{"400 Parameter verification failed.", "content:"},
			served: []string{"/storage/local/content"}, times: 1,
		},
		{
			name:  "failed task",
			fault: &pvesim.Fault{Method: "POST", Path: "/upload$", Kind: pvesim.FaultTaskFail, Message: "unable to write template: No space left on device"},
			call: func(c *Client) error {
				return c.UploadTemplate(ctx, "t.tar", bytes.NewReader([]byte("not an archive")), 14)
			},
			is:  errdefs.IsFailedPrecondition,
			msg: []string{"proxmox: task imgcopy", "failed: unable to write template: No space left on device", "task log:"},
		},
		{
			name:  "task past its deadline",
			edit:  func(t *testing.T, s *sim, c *runtime.ProxmoxConfig) { c.Timeout = "1s" },
			fault: &pvesim.Fault{Method: "POST", Path: "/upload$", Kind: pvesim.FaultTaskHang},
			call: func(c *Client) error {
				return c.UploadTemplate(ctx, "t.tar", bytes.NewReader([]byte("not an archive")), 14)
			},
			is:  errdefs.IsDeadlineExceeded,
			msg: []string{"proxmox: task imgcopy", "still running after 1s (PVE carries on with it)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSim(t)
			cfg := s.config(t)
			if tc.edit != nil {
				tc.edit(t, s, &cfg)
			}
			c := newClient(t, cfg)
			if tc.fault != nil {
				if err := s.AddFault(*tc.fault); err != nil {
					t.Fatal(err)
				}
			}
			err := tc.call(c)
			t.Logf("error: %v", err)
			noSecret(t, s, err)
			if tc.is == nil {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				var e *Error
				if !tc.is(err) || !errors.As(err, &e) {
					t.Fatalf("error %v (%T), wrong kind", err, err)
				}
				for _, m := range tc.msg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q lacks %q", err, m)
					}
				}
			}
			if tc.served != nil {
				if n := s.count(tc.served...); n != tc.times {
					t.Errorf("served %d times, want %d", n, tc.times)
				}
			}
		})
	}
}
