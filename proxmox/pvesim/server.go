// Package pvesim is an emulator of the Proxmox VE API for tests: an HTTPS server on
// loopback speaking the subset of the PVE REST API that lxcri's Proxmox backends use, with
// API-token auth, PVE's envelope, errors and task model, every request checked against the
// real API schema (apidata.js), injectable faults, and real LXC containers behind the CT
// endpoints. See README.md for what it covers and where it differs from PVE.
package pvesim

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Defaults of Config.
const (
	DefaultNode          = "pvesim"
	DefaultTokenID       = "root@pam!lxcri"
	DefaultAuthFailDelay = 3 * time.Second // pve-http-server delays every failed auth by 3 s
	// DefaultStorage holds CT root disks and has snapshots; DefaultTemplateStorage is
	// PVE's "local" directory storage, which holds templates and has none.
	DefaultStorage         = "simpool"
	DefaultTemplateStorage = "local"
)

// Config configures a Server.
type Config struct {
	// Listen is the TCP address to serve on; default 127.0.0.1:0 (a free port).
	Listen string
	// Dir is the emulator's own directory: storages, the LXC path, uploads, ca.pem,
	// token_secret and lxcri.toml. Required; created when missing.
	Dir string
	// Node is the node name; default "pvesim".
	Node string
	// TokenID is the one API token accepted, user@realm!name; default root@pam!lxcri.
	TokenID string
	// TokenSecret is its secret; a random UUID when empty.
	TokenSecret string
	// AuthFailDelay is how long a failed auth waits before its 401, as PVE's 3 s; zero
	// means the default, a negative value no delay (tests).
	AuthFailDelay time.Duration
	// ZFSDataset, when set, backs the snapshot storage with child datasets of it and real
	// ZFS snapshots and clones; otherwise snapshots are copies of the CT's directory.
	ZFSDataset string
	// Logf, when set, receives one line per request and per task.
	Logf func(format string, args ...any)
}

// Server is one emulated PVE node.
type Server struct {
	cfg      Config
	schema   *Schema
	handlers map[string]handler
	caPEM    []byte
	ln       net.Listener
	srv      *http.Server
	lxcPath  string
	// cgroupPrefix keeps this emulator's CT cgroups apart from any other's.
	cgroupPrefix string
	apiBase      string

	ctx    context.Context
	cancel context.CancelFunc
	tasks  sync.WaitGroup

	faults faultSet

	mu       sync.Mutex
	cts      map[int]*ct
	vms      map[int]*vm
	taskList []*task
	taskByID map[string]*task
	taskSeq  uint32
	storages map[string]*storage
	started  time.Time
}

// New prepares a server: its directory, CA and certificate, storages and files for
// clients. It does not listen yet; call Start.
func New(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("pvesim: Config.Dir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Node == "" {
		cfg.Node = DefaultNode
	}
	if !reNode.MatchString(cfg.Node) {
		return nil, fmt.Errorf("pvesim: node %q is not a valid node name", cfg.Node)
	}
	if cfg.TokenID == "" {
		cfg.TokenID = DefaultTokenID
	}
	if !reTokenID.MatchString(cfg.TokenID) {
		return nil, fmt.Errorf("pvesim: token id %q is not user@realm!name", cfg.TokenID)
	}
	if cfg.TokenSecret == "" {
		cfg.TokenSecret = newUUID()
	}
	if cfg.AuthFailDelay == 0 {
		cfg.AuthFailDelay = DefaultAuthFailDelay
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	schema, err := LoadSchema()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          cfg,
		schema:       schema,
		handlers:     map[string]handler{},
		lxcPath:      filepath.Join(dir, "lxc"),
		cgroupPrefix: "pvesim-" + newUUID()[:8],
		cts:          map[int]*ct{},
		vms:          map[int]*vm{},
		taskByID:     map[string]*task{},
		storages:     map[string]*storage{},
		started:      time.Now(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, d := range []string{dir, s.lxcPath, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("pvesim: %w", err)
		}
	}
	if err := s.initStorages(); err != nil {
		return nil, err
	}
	if err := s.initQemu(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

var reTokenID = regexp.MustCompile(`^([^\s:@!]+@[A-Za-z][A-Za-z0-9\.\-_]+)!([A-Za-z][A-Za-z0-9\.\-_]+)$`)

// route registers a handler for one method of one schema path; the path must exist in the
// schema, so a typo or a path PVE removed fails at start, not at the first request.
func (s *Server) route(verb, schemaPath string, h handler) {
	if s.schema.Method(verb, schemaPath) == nil {
		panic(fmt.Sprintf("pvesim: %s %s is not in the PVE API schema", verb, schemaPath))
	}
	s.handlers[verb+" "+schemaPath] = h
}

// Routes lists the served methods as "VERB /schema/path".
func (s *Server) Routes() []string { return sortedKeys(s.handlers) }

// Start listens and serves in the background, and writes ca.pem, token_secret and
// lxcri.toml into the directory.
func (s *Server) Start() error {
	host, _, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("pvesim: listen address %q: %w", s.cfg.Listen, err)
	}
	caPEM, tlsCfg, err := newTLS(s.cfg.Node, []string{host})
	if err != nil {
		return fmt.Errorf("pvesim: certificates: %w", err)
	}
	s.caPEM = caPEM
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("pvesim: %w", err)
	}
	s.ln = ln
	s.apiBase = "https://" + ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 30 * time.Second,
		// no HTTP/2, as pveproxy
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	if err := s.writeClientFiles(); err != nil {
		ln.Close()
		return err
	}
	go s.srv.ServeTLS(ln, "", "")
	return nil
}

// URL is the API base URL, https://HOST:PORT/api2/json.
func (s *Server) URL() string { return s.apiBase + "/api2/json" }

// Addr is the listening address, HOST:PORT.
func (s *Server) Addr() string { return strings.TrimPrefix(s.apiBase, "https://") }

// CAPEM is the PEM of the CA that signed the server's certificate.
func (s *Server) CAPEM() []byte { return s.caPEM }

// Node is the node name.
func (s *Server) Node() string { return s.cfg.Node }

// TokenID and TokenSecret are the accepted API token.
func (s *Server) TokenID() string     { return s.cfg.TokenID }
func (s *Server) TokenSecret() string { return s.cfg.TokenSecret }

// Dir is the emulator's directory; LXCPath the LXC path its CTs live in.
func (s *Server) Dir() string     { return s.cfg.Dir }
func (s *Server) LXCPath() string { return s.lxcPath }

// CgroupPrefix is the cgroup, below each hierarchy's root, that holds this emulator's CTs
// (and nothing else); Close removes it.
func (s *Server) CgroupPrefix() string { return s.cgroupPrefix }

// Close stops serving, interrupts running tasks and waits for them, then stops and
// destroys every CT it still has: its state lives in memory only, so nothing it made
// may outlive it.
func (s *Server) Close() error {
	var err error
	if s.srv != nil {
		err = s.srv.Close()
	}
	s.cancel()
	s.tasks.Wait()
	s.mu.Lock()
	cts := make([]*ct, 0, len(s.cts))
	for _, c := range s.cts {
		cts = append(cts, c)
	}
	s.mu.Unlock()
	for _, c := range cts {
		if e := s.destroyCT(context.Background(), c, nil); e != nil && err == nil {
			err = e
		}
	}
	if e := s.closeQemu(); e != nil && err == nil {
		err = e
	}
	s.cleanCgroupPrefix()
	return err
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// reAuthHeader is pve-http-server's API token header regex.
var reAuthHeader = regexp.MustCompile(`(?:^|\s)PVEAPIToken(?:=| )([^;]*)`)

// authenticate returns the token's user id, or an error for a 401.
func (s *Server) authenticate(hr *http.Request) (string, error) {
	m := reAuthHeader.FindStringSubmatch(hr.Header.Get("Authorization"))
	if m == nil {
		return "", errorf(http.StatusUnauthorized, "No ticket")
	}
	tokenID, secret, ok := strings.Cut(strings.TrimSpace(m[1]), "=")
	if !ok || !reTokenID.MatchString(tokenID) {
		return "", errorf(http.StatusUnauthorized, "authentication failure")
	}
	idOK := subtle.ConstantTimeCompare([]byte(tokenID), []byte(s.cfg.TokenID)) == 1
	secOK := subtle.ConstantTimeCompare([]byte(secret), []byte(s.cfg.TokenSecret)) == 1
	if !idOK || !secOK {
		return "", errorf(http.StatusUnauthorized, "authentication failure")
	}
	return tokenID, nil
}

func (s *Server) authDelay(hr *http.Request) {
	if s.cfg.AuthFailDelay <= 0 {
		return
	}
	t := time.NewTimer(s.cfg.AuthFailDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-hr.Context().Done():
	case <-s.ctx.Done():
	}
}

// ServeHTTP is the API: faults, auth, schema lookup, parameter verification, handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	const prefix = "/api2/json"
	esc := hr.URL.EscapedPath()
	if strings.HasPrefix(esc, "/pvesim/") {
		s.serveAdmin(w, hr)
		return
	}
	if esc != prefix && !strings.HasPrefix(esc, prefix+"/") {
		writeError(w, errorf(http.StatusNotImplemented, "Method '%s %s' not implemented", hr.Method, hr.URL.Path))
		return
	}
	rel := strings.TrimPrefix(esc, prefix)
	if rel == "" {
		rel = "/"
	}
	relPath, _ := pathUnescape(rel)
	s.logf("%s %s", hr.Method, relPath)

	fault := s.faults.match(hr.Method, relPath)
	if fault != nil {
		if done := s.applyRequestFault(w, hr, fault); done {
			return
		}
	}

	user, err := s.authenticate(hr)
	if err != nil {
		s.authDelay(hr)
		writeError(w, err)
		return
	}
	schemaPath, pathParams, methods, ok := s.schema.Lookup(rel)
	if !ok {
		writeError(w, errorf(http.StatusNotImplemented, "Method '%s %s' not implemented", hr.Method, relPath))
		return
	}
	m := methods[hr.Method]
	if m == nil {
		writeError(w, errorf(http.StatusNotImplemented, "Method '%s %s' not implemented", hr.Method, relPath))
		return
	}
	if !m.AllowToken {
		writeError(w, errorf(http.StatusForbidden, "Permission check failed (API tokens are not allowed for this method)"))
		return
	}
	h := s.handlers[hr.Method+" "+schemaPath]
	if h == nil {
		writeError(w, errorf(http.StatusNotImplemented, "Method '%s %s' not implemented by pvesim", hr.Method, schemaPath))
		return
	}
	r := &request{ctx: hr.Context(), s: s, verb: hr.Method, path: relPath, method: m, user: user, http: hr}
	if fault != nil && (fault.Kind == FaultTaskFail || fault.Kind == FaultTaskHang) {
		r.fault = fault
	}
	var upload *uploadFile
	if isMultipart(hr) {
		params, up, err := s.readUpload(hr, pathParams)
		if err != nil {
			writeError(w, err)
			return
		}
		r.params, upload = params, up
		defer upload.remove()
	} else {
		params, err := readParams(hr, pathParams)
		if err != nil {
			writeError(w, err)
			return
		}
		r.params = params
	}
	r.upload = upload
	if errs := s.schema.Check(m, r.params); errs != nil {
		writeError(w, paramError(errs))
		return
	}
	data, err := h(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeData(w, data, r.extra)
}

func pathUnescape(p string) (string, error) {
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil {
			return p, err
		}
		segs[i] = v
	}
	return strings.Join(segs, "/"), nil
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// writeClientFiles writes what a client needs to talk to this node: the CA, the token
// secret (0600) and lxcri's [proxmox] section for a shim on this host, complete for the
// proxmox-lxc backend: lxc_path is the emulator's, where that backend attaches to the
// CTs as pct exec does on a node.
func (s *Server) writeClientFiles() error {
	dir := s.cfg.Dir
	if err := writeFileAtomic(filepath.Join(dir, "ca.pem"), s.caPEM, 0o644); err != nil {
		return err
	}
	secretFile := filepath.Join(dir, "token_secret")
	if err := writeFileAtomic(secretFile, []byte(s.cfg.TokenSecret+"\n"), 0o600); err != nil {
		return err
	}
	// go-toml quotes the values (paths may hold any character); the keys are those of
	// lxcri's [proxmox] section, which its loader checks strictly.
	body, err := toml.Marshal(map[string]any{"proxmox": map[string]string{
		"url":               s.apiBase,
		"node":              s.cfg.Node,
		"token_id":          s.cfg.TokenID,
		"token_secret_file": secretFile,
		"ca_file":           filepath.Join(dir, "ca.pem"),
		"storage":           DefaultStorage,
		"template_storage":  DefaultTemplateStorage,
		"lxc_path":          s.lxcPath,
	}, "proxmox-vm": map[string]int{
		"template_vmid": TemplateVMID,
	}})
	if err != nil {
		return fmt.Errorf("pvesim: lxcri.toml: %w", err)
	}
	head := "# Written by pvesim: lxcri's [proxmox] section for the emulated node " + s.cfg.Node + ",\n" +
		"# for a shim on this host (lxc_path is the emulator's LXC path), and the template VM\n" +
		"# of its [proxmox-vm] section.\n"
	return writeFileAtomic(filepath.Join(dir, "lxcri.toml"), append([]byte(head), body...), 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("pvesim: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("pvesim: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("pvesim: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pvesim: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pvesim: %w", err)
	}
	return nil
}
