package proxmox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
)

// DefaultTimeout bounds an API call (retries included) or a task when [proxmox] timeout is
// unset. Creating a CT from a large template takes tens of seconds on a busy node.
const DefaultTimeout = 2 * time.Minute

// DefaultLXCPath is where PVE keeps its CTs' LXC configurations.
const DefaultLXCPath = "/var/lib/lxc"

// PVE's own formats (pve-access-control PVE/Auth/Plugin.pm, pve-common JSONSchema.pm):
// a user is name@realm with no whitespace, ':' or '/' in the name; a token name and a realm
// start with a letter; node and storage ids are pve-node and pve-storage-id.
var (
	tokenIDRe   = regexp.MustCompile(`^[^\s:/@!=]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$`)
	nodeRe      = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`)
	storageIDRe = regexp.MustCompile(`^[a-z][a-z0-9\-_.]*[a-z0-9]$`)
	// A certificate fingerprint as PVE shows it: 32 hex bytes separated by colons.
	fingerprintRe = regexp.MustCompile(`^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}$`)
)

// settings is a validated [proxmox] section.
type settings struct {
	baseURL         string // ends in /api2/json
	node            string
	tokenID         string
	secretFile      string
	caFile          string
	fingerprint     []byte // SHA-256 of the leaf certificate, or nil
	insecure        bool
	storage         string
	templateStorage string
	lxcPath         string
	timeout         time.Duration
}

// fieldError is InvalidArgument naming the [proxmox] key at fault.
func fieldError(key, format string, args ...any) error {
	return fmt.Errorf("[proxmox] %s: %s: %w", key, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// Validate checks a [proxmox] section without reading the secret or touching the network.
func Validate(c *runtime.ProxmoxConfig) error {
	_, err := parseConfig(c)
	return err
}

func parseConfig(c *runtime.ProxmoxConfig) (*settings, error) {
	if c == nil {
		return nil, fieldError("url", "the [proxmox] section is missing")
	}
	s := &settings{
		node:            c.Node,
		tokenID:         c.TokenID,
		secretFile:      c.TokenSecretFile,
		caFile:          c.CAFile,
		insecure:        c.InsecureSkipVerify,
		storage:         c.Storage,
		templateStorage: c.TemplateStorage,
		lxcPath:         DefaultLXCPath,
		timeout:         DefaultTimeout,
	}
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return nil, fieldError("url", "required (e.g. https://127.0.0.1:8006)")
	case err != nil:
		return nil, fieldError("url", "%q is not a URL", c.URL)
	case u.Scheme != "https":
		return nil, fieldError("url", "%q: the PVE API is served over https only", c.URL)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fieldError("url", "%q: want https://HOST[:PORT][/api2/json]", c.URL)
	}
	path := strings.TrimSuffix(u.Path, "/")
	if path != "" && path != "/api2/json" {
		return nil, fieldError("url", "%q: the path may only be /api2/json", c.URL)
	}
	s.baseURL = "https://" + u.Host + "/api2/json"

	if !nodeRe.MatchString(c.Node) {
		return nil, fieldError("node", "%q is not a PVE node name", c.Node)
	}
	if !tokenIDRe.MatchString(c.TokenID) {
		return nil, fieldError("token_id", "%q: want user@realm!tokenname", c.TokenID)
	}
	if c.TokenSecretFile == "" || !strings.HasPrefix(c.TokenSecretFile, "/") {
		return nil, fieldError("token_secret_file", "%q: want the absolute path of the file holding the token's secret", c.TokenSecretFile)
	}
	if c.CAFile != "" && !strings.HasPrefix(c.CAFile, "/") {
		return nil, fieldError("ca_file", "%q is not an absolute path", c.CAFile)
	}
	if c.Fingerprint != "" {
		if !fingerprintRe.MatchString(c.Fingerprint) {
			return nil, fieldError("fingerprint", "%q: want the certificate's SHA-256 fingerprint as 32 colon-separated hex bytes", c.Fingerprint)
		}
		s.fingerprint, _ = hex.DecodeString(strings.ReplaceAll(c.Fingerprint, ":", ""))
	}
	if c.CAFile != "" && c.Fingerprint != "" {
		return nil, fieldError("fingerprint", "set ca_file or fingerprint, not both")
	}
	if c.InsecureSkipVerify && (c.CAFile != "" || c.Fingerprint != "") {
		return nil, fieldError("insecure_skip_verify", "contradicts ca_file/fingerprint")
	}
	if !storageIDRe.MatchString(c.Storage) {
		return nil, fieldError("storage", "%q is not a PVE storage id", c.Storage)
	}
	if !storageIDRe.MatchString(c.TemplateStorage) {
		return nil, fieldError("template_storage", "%q is not a PVE storage id", c.TemplateStorage)
	}
	if c.LXCPath != "" {
		if !strings.HasPrefix(c.LXCPath, "/") || strings.ContainsAny(c.LXCPath, "\n\x00") {
			return nil, fieldError("lxc_path", "%q is not an absolute path", c.LXCPath)
		}
		s.lxcPath = c.LXCPath
	}
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			return nil, fieldError("timeout", "%q: want a positive duration such as \"2m\"", c.Timeout)
		}
		s.timeout = d
	}
	return s, nil
}

// Fingerprint formats the SHA-256 fingerprint of a DER certificate as PVE shows it.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return fmtHex(sum[:])
}
