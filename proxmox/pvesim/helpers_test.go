package pvesim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// newTestServer starts an emulator in a temporary directory, without the auth delay.
func newTestServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{Dir: t.TempDir(), AuthFailDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// apiClient talks to the emulator over real HTTPS, verifying it with its CA.
type apiClient struct {
	t    *testing.T
	base string
	auth string
	hc   *http.Client
}

func newClient(t *testing.T, s *Server) *apiClient {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM()) {
		t.Fatal("bad CA PEM")
	}
	return &apiClient{
		t: t, base: s.URL(),
		auth: "PVEAPIToken=" + s.TokenID() + "=" + s.TokenSecret(),
		hc: &http.Client{
			Timeout:   2 * time.Minute,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		},
	}
}

// answer is one API answer.
type answer struct {
	Code   int
	Status string // the whole status line text after the code (PVE's reason phrase)
	Data   any
	Msg    string
	Errors map[string]string
	Raw    map[string]json.RawMessage
}

// call sends params as a form (query for GET and DELETE).
func (c *apiClient) call(method, path string, params url.Values) answer {
	c.t.Helper()
	u := c.base + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
	} else if params != nil {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return c.send(req)
}

// callJSON sends params as a JSON body.
func (c *apiClient) callJSON(method, path string, params map[string]any) answer {
	c.t.Helper()
	b, err := json.Marshal(params)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return c.send(req)
}

func (c *apiClient) send(req *http.Request) answer {
	c.t.Helper()
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	a := answer{Code: resp.StatusCode, Status: strings.TrimSpace(strings.TrimPrefix(resp.Status, http.StatusText(0)))}
	_, a.Status, _ = strings.Cut(resp.Status, " ")
	if err := json.Unmarshal(b, &a.Raw); err != nil {
		c.t.Fatalf("%s %s: body is not a JSON object: %q", req.Method, req.URL.Path, b)
	}
	json.Unmarshal(a.Raw["data"], &a.Data)
	json.Unmarshal(a.Raw["message"], &a.Msg)
	json.Unmarshal(a.Raw["errors"], &a.Errors)
	return a
}

// ok fails unless the answer is a 200 and returns its data.
func (a answer) ok(t *testing.T) any {
	t.Helper()
	if a.Code != http.StatusOK {
		t.Fatalf("answer %d %q: %q %v", a.Code, a.Status, a.Msg, a.Errors)
	}
	return a.Data
}

// upid fails unless the answer is a 200 with a UPID.
func (a answer) upid(t *testing.T) string {
	t.Helper()
	u, ok := a.ok(t).(string)
	if !ok || !strings.HasPrefix(u, "UPID:") {
		t.Fatalf("want a UPID, got %#v", a.Data)
	}
	return u
}

// wait waits for a task through the API, as clients do, and returns its status.
func (c *apiClient) wait(s *Server, upid string) map[string]any {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := s.WaitTask(ctx, upid); err != nil {
		c.t.Fatalf("task %s: %v", upid, err)
	}
	st, _ := c.call("GET", "/nodes/"+s.Node()+"/tasks/"+url.PathEscape(upid)+"/status", nil).ok(c.t).(map[string]any)
	return st
}

// waitOK waits for a task and fails unless it ended OK.
func (c *apiClient) waitOK(s *Server, upid string) {
	c.t.Helper()
	st := c.wait(s, upid)
	if st["exitstatus"] != "OK" {
		c.t.Fatalf("task %s: %v\n%s", upid, st["exitstatus"], c.taskLog(s, upid))
	}
}

func (c *apiClient) taskLog(s *Server, upid string) string {
	c.t.Helper()
	lines, _ := c.call("GET", "/nodes/"+s.Node()+"/tasks/"+url.PathEscape(upid)+"/log", url.Values{"limit": {"1000"}}).ok(c.t).([]any)
	var b strings.Builder
	for _, l := range lines {
		m, _ := l.(map[string]any)
		b.WriteString(m["t"].(string) + "\n")
	}
	return b.String()
}

// appCmd is the test image's Cmd: an application that runs until SIGTERM, PVE's default
// halt signal for OCI CTs.
const appCmd = `["/bin/sh","-c","trap \"exit 0\" TERM; while :; do sleep 1; done"]`

func configOf(t *testing.T, c *apiClient, vmid int) map[string]any {
	t.Helper()
	return c.call("GET", "/nodes/pvesim/lxc/"+itoa(vmid)+"/config", nil).ok(t).(map[string]any)
}
