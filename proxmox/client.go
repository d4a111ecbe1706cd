// Package proxmox is lxcri's client of the Proxmox VE API, over go-proxmox: API-token
// authentication with the secret read once from a file, TLS verified against a CA file, a
// pinned fingerprint or the system roots, every call bounded by the configured timeout and
// retried with backoff when PVE or the connection fails transiently, every task waited for
// with a deadline and its log read when it fails. Errors carry PVE's own text and an errdefs
// code; the secret appears in none of them, nor in any log.
//
// The package speaks the REST API only; process-level work on a CT (exec, stdio, stats) is
// the node's local LXC's, as `pct exec` does, and belongs to the backends.
package proxmox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	goprox "github.com/luthermonson/go-proxmox"

	"github.com/lxcri/lxcri/runtime"
)

// Client talks to the PVE API of one node. It is safe for concurrent use.
type Client struct {
	api             *goprox.Client
	baseURL         string
	node            string
	tokenID         string
	storage         string
	templateStorage string
	lxcPath         string
	timeout         time.Duration
	retry           retryPolicy
}

// retryPolicy is how often and how patiently a transiently failing call is repeated.
type retryPolicy struct {
	attempts int
	initial  time.Duration
	max      time.Duration
}

var defaultRetry = retryPolicy{attempts: 5, initial: 100 * time.Millisecond, max: 2 * time.Second}

// New validates the [proxmox] section, reads the token's secret once and builds a client.
// It makes no request.
func New(ctx context.Context, cfg *runtime.ProxmoxConfig) (*Client, error) {
	s, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	secret, err := readSecret(s.secretFile)
	if err != nil {
		return nil, err
	}
	tc, err := tlsConfig(s)
	if err != nil {
		return nil, err
	}
	if s.insecure {
		log.G(ctx).WithField("url", s.baseURL).Warn("proxmox: insecure_skip_verify is set: the PVE node's certificate is not verified, so anyone on the path can impersonate it and read the API token")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// The node's API is reached directly: an environment proxy would see the token.
	tr.Proxy = nil
	tr.TLSClientConfig = tc
	api := goprox.NewClient(s.baseURL,
		// The client-wide timeout also ends an upload abandoned by its caller (go-proxmox
		// uploads take no context).
		goprox.WithHTTPClient(&http.Client{Transport: tr, Timeout: s.timeout}),
		goprox.WithAPIToken(s.tokenID, secret),
		goprox.WithUserAgent("lxcri"),
		goprox.WithLogger(quietLogger{}),
	)
	return &Client{
		api:             api,
		baseURL:         s.baseURL,
		node:            s.node,
		tokenID:         s.tokenID,
		storage:         s.storage,
		templateStorage: s.templateStorage,
		lxcPath:         s.lxcPath,
		timeout:         s.timeout,
		retry:           defaultRetry,
	}, nil
}

// Node is the node name the client works on.
func (c *Client) Node() string { return c.node }

// Storage is the storage for CT root disks.
func (c *Client) Storage() string { return c.storage }

// TemplateStorage is the vztmpl storage for OCI archives.
func (c *Client) TemplateStorage() string { return c.templateStorage }

// LXCPath is the node's LXC path, where its CTs can be attached to.
func (c *Client) LXCPath() string { return c.lxcPath }

// Timeout bounds each call and each task.
func (c *Client) Timeout() time.Duration { return c.timeout }

func tlsConfig(s *settings) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case s.caFile != "":
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return nil, fmt.Errorf("[proxmox] ca_file %s: %v: %w", s.caFile, unwrapPathError(err), errdefs.ErrFailedPrecondition)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fieldError("ca_file", "%s holds no PEM certificate", s.caFile)
		}
		tc.RootCAs = pool
	case s.fingerprint != nil:
		// Pinning replaces chain verification, as PVE's own tools do for a node's
		// self-signed certificate: the leaf must be the one the operator named.
		want := fmtHex(s.fingerprint)
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			if got := Fingerprint(cs.PeerCertificates[0].Raw); got != want {
				return &fingerprintError{got: got, want: want}
			}
			return nil
		}
	case s.insecure:
		tc.InsecureSkipVerify = true
	}
	return tc, nil
}

func fmtHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

// call is one API request.
type call struct {
	method string
	path   string // below /api2/json, already escaped
	// params go into the query of GET and DELETE and into the JSON body of POST and PUT.
	params map[string]any
	// need is the privilege PVE checks, e.g. "VM.PowerMgmt on /vms/100", said on a 403.
	need string
	// replayable marks a POST that may be sent again after a connection broke midway
	// (PVE answers a repeat harmlessly). GET, PUT and DELETE always may.
	replayable bool
}

func (k call) op() string { return k.method + " " + k.path }

// do sends a call, retrying connection failures and 5xx answers with backoff within the
// client's timeout, and decodes the answer's data into out (which may be nil).
func (c *Client) do(ctx context.Context, k call, out any) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	var last error
	for attempt := 0; attempt < c.retry.attempts; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, c.backoff(attempt)); err != nil {
				break
			}
		}
		err := c.send(ctx, k, out)
		if err == nil {
			return nil
		}
		last = err
		if ctx.Err() != nil || !c.retryable(k, err) {
			break
		}
		log.G(ctx).WithError(err).WithField("attempt", attempt+1).Debugf("proxmox: %s failed, retrying", k.op())
	}
	return c.classify(ctx, k, last)
}

func (c *Client) send(ctx context.Context, k call, out any) error {
	switch k.method {
	case http.MethodGet:
		return c.api.Get(ctx, k.path+query(k.params), out)
	case http.MethodDelete:
		return c.api.Delete(ctx, k.path+query(k.params), out)
	case http.MethodPost:
		return c.api.Post(ctx, k.path, body(k.params), out)
	case http.MethodPut:
		return c.api.Put(ctx, k.path, body(k.params), out)
	}
	return fmt.Errorf("method %s: %w", k.method, errdefs.ErrInvalidArgument)
}

// bound applies the client's timeout unless ctx ends sooner.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < c.timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

func (c *Client) backoff(attempt int) time.Duration {
	d := c.retry.initial << (attempt - 1)
	if d > c.retry.max || d <= 0 {
		d = c.retry.max
	}
	// Half fixed, half jitter: shims of one pod retrying together spread out.
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryable: a connection that never opened, any 5xx but the ones PVE uses to say
// something definite about the guest, and a broken connection where repeating the request
// cannot do the work twice. Never a 4xx: PVE refused the request itself.
func (c *Client) retryable(k call, err error) bool {
	if apiErr, ok := goprox.AsAPIError(err); ok {
		return apiErr.StatusCode >= 500 && definite(apiErr.Message) == nil
	}
	if isTLSError(err) {
		return false
	}
	if isDialError(err) {
		return true
	}
	return k.method != http.MethodPost || k.replayable
}

// query encodes GET/DELETE parameters the way PVE parses them (booleans as 0/1).
func query(p map[string]any) string {
	if len(p) == 0 {
		return ""
	}
	v := url.Values{}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v.Set(k, paramString(p[k]))
	}
	return "?" + v.Encode()
}

func paramString(x any) string {
	switch v := x.(type) {
	case bool:
		if v {
			return "1"
		}
		return "0"
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	}
	return fmt.Sprint(x)
}

// body is the JSON body of POST/PUT: booleans as 0/1, which every PVE version takes.
func body(p map[string]any) map[string]any {
	if p == nil {
		return nil
	}
	b := make(map[string]any, len(p))
	for k, v := range p {
		if x, ok := v.(bool); ok {
			if x {
				v = 1
			} else {
				v = 0
			}
		}
		b[k] = v
	}
	return b
}

// quietLogger keeps go-proxmox's logging out of the shim's: its debug output prints request
// bodies, which hold container environments.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...interface{}) {}
func (quietLogger) Infof(string, ...interface{})  {}
func (quietLogger) Warnf(string, ...interface{})  {}
func (quietLogger) Errorf(string, ...interface{}) {}

// fingerprintError is a node certificate that is not the pinned one.
type fingerprintError struct{ got, want string }

func (e *fingerprintError) Error() string {
	return fmt.Sprintf("certificate fingerprint %s does not match [proxmox] fingerprint %s", e.got, e.want)
}
