package pvesim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ct is one CT: its PVE config (what /etc/pve/lxc/VMID.conf holds) and snapshots. The LXC
// container behind it is named by its VMID in the server's LXC path.
type ct struct {
	vmid int
	// op serializes the operations on the CT, as PVE's config file lock does.
	op sync.Mutex

	// guarded by Server.mu
	conf      map[string]string
	lxc       [][2]string // raw lxc.* keys, read-only through the API
	snapshots map[string]*ctSnapshot
	parent    string
	started   time.Time
	deleted   bool
}

type ctSnapshot struct {
	conf        map[string]string
	lxc         [][2]string
	description string
	snaptime    int64
	parent      string
}

func copyConf(c map[string]string) map[string]string {
	out := make(map[string]string, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

// confText renders a config as PVE writes it (sorted keys, raw lxc keys last); its SHA-1
// is the config digest clients send back to detect concurrent changes.
func confText(conf map[string]string, lxc [][2]string) string {
	var b strings.Builder
	if d, ok := conf["description"]; ok {
		for _, line := range strings.Split(d, "\n") {
			b.WriteString("#" + line + "\n")
		}
	}
	for _, k := range sortedKeys(conf) {
		if k == "description" {
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", k, conf[k])
	}
	for _, kv := range lxc {
		fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
	}
	return b.String()
}

func confDigest(conf map[string]string, lxc [][2]string) string {
	sum := sha1.Sum([]byte(confText(conf, lxc)))
	return hex.EncodeToString(sum[:])
}

// nodeCT is the CT a request under /nodes/{node}/lxc/{vmid} names, after checking the
// node as PVE does first.
func (s *Server) nodeCT(r *request) (*ct, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	return s.lookupCT(r)
}

// lookupCT finds a CT; a missing one is PVE's 500 about its config file.
func (s *Server) lookupCT(r *request) (*ct, error) {
	vmid := r.intOr("vmid", 0)
	s.mu.Lock()
	c := s.cts[vmid]
	s.mu.Unlock()
	if c == nil || c.isDeleted(s) {
		return nil, errorf(http.StatusInternalServerError, "Configuration file 'nodes/%s/lxc/%d.conf' does not exist", s.cfg.Node, vmid)
	}
	return c, nil
}

func (c *ct) isDeleted(s *Server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.deleted
}

// get reads a config key under the server lock.
func (s *Server) ctGet(c *ct, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.conf[key]
}

func (s *Server) ctSet(c *ct, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if value == "" {
		delete(c.conf, key)
		return
	}
	c.conf[key] = value
}

// checkLock is PVE's check_lock: a locked CT refuses most operations.
func (s *Server) checkLock(c *ct) error {
	if l := s.ctGet(c, "lock"); l != "" {
		return errorf(http.StatusInternalServerError, "CT is locked (%s)", l)
	}
	return nil
}

// checkNode refuses a node that is not this one, as a single-node cluster does.
func (s *Server) checkNode(r *request) error {
	if n := r.str("node"); n != "" && n != s.cfg.Node && n != "localhost" {
		return errorf(http.StatusInternalServerError, "hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", n, n)
	}
	return nil
}

// typedConf returns a CT config with the types the schema gives its keys (integers and
// booleans as JSON numbers), as PVE's GET config answers.
func (s *Server) typedConf(conf map[string]string) map[string]any {
	out := map[string]any{}
	m := s.schema.Method("PUT", "/nodes/{node}/lxc/{vmid}/config")
	props, _ := m.Parameters["properties"].(map[string]any)
	for k, v := range conf {
		sch, _ := props[schemaKeyFor(props, k)].(map[string]any)
		switch sch["type"] {
		case "integer", "boolean":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[k] = n
				continue
			}
		case "number":
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				out[k] = f
				continue
			}
		}
		out[k] = v
	}
	return out
}

// rootfsVolume returns the storage and volume name of a CT's rootfs.
func (s *Server) rootfsVolume(conf map[string]string) (*storage, string, error) {
	ps, err := s.parseMP(conf["rootfs"])
	if err != nil {
		return nil, "", err
	}
	sid, vol, ok := strings.Cut(ps["volume"], ":")
	if !ok {
		return nil, "", fmt.Errorf("rootfs '%s' is not a storage volume", conf["rootfs"])
	}
	st := s.storages[sid]
	if st == nil {
		return nil, "", fmt.Errorf("storage '%s' does not exist", sid)
	}
	return st, vol, nil
}

// parseMP splits a rootfs/mp property string by the schema's format.
func (s *Server) parseMP(v string) (map[string]string, error) {
	m := s.schema.Method("POST", "/nodes/{node}/lxc")
	props, _ := m.Parameters["properties"].(map[string]any)
	rootfs, _ := props["rootfs"].(map[string]any)
	format, _ := rootfs["format"].(map[string]any)
	return ParsePropertyString(format, v)
}

func (s *Server) printMP(ps map[string]string) string {
	parts := []string{ps["volume"]}
	keys := make([]string, 0, len(ps))
	for k := range ps {
		if k != "volume" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+ps[k])
	}
	return strings.Join(parts, ",")
}

// parseNet splits a net[n] property string.
func (s *Server) parseNet(v string) (map[string]string, error) {
	m := s.schema.Method("POST", "/nodes/{node}/lxc")
	props, _ := m.Parameters["properties"].(map[string]any)
	net, _ := props["net[n]"].(map[string]any)
	format, _ := net["format"].(map[string]any)
	return ParsePropertyString(format, v)
}

func printNet(ps map[string]string) string {
	var parts []string
	for _, k := range []string{"name", "bridge", "hwaddr", "ip", "gw", "ip6", "gw6", "type"} {
		if v, ok := ps[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	for _, k := range sortedKeys(ps) {
		switch k {
		case "name", "bridge", "hwaddr", "ip", "gw", "ip6", "gw6", "type":
			continue
		}
		parts = append(parts, k+"="+ps[k])
	}
	return strings.Join(parts, ",")
}

// diskSize is the size=... of a rootfs in bytes (0 when unset).
func diskSize(ps map[string]string) int64 {
	m := reSize.FindStringSubmatch(ps["size"])
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	mult := map[string]float64{"": 1, "K": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MiB": 1 << 20, "G": 1 << 30, "GiB": 1 << 30, "T": 1 << 40, "TiB": 1 << 40}[m[3]]
	return int64(f * mult)
}
