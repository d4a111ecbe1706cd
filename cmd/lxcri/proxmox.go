//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/lxcri/lxcri/runtime"
)

// pveSettings are the [proxmox] keys `lxcri check` needs.
type pveSettings struct {
	URL, Node, TokenID, TokenSecretFile, CAFile, Fingerprint string
	Insecure                                                 bool
}

// proxmoxSection reads the [proxmox] table of cfg by its TOML keys, so that this tool
// builds with and without the Proxmox backends' configuration; ok is false when the
// configuration has no such table or it is empty.
func proxmoxSection(cfg *runtime.Config) (pveSettings, bool) {
	var s pveSettings
	if cfg == nil {
		return s, false
	}
	v := reflect.ValueOf(cfg).Elem()
	f, ok := v.Type().FieldByName("Proxmox")
	if !ok {
		return s, false
	}
	sec := v.FieldByIndex(f.Index)
	if sec.Kind() == reflect.Pointer {
		if sec.IsNil() {
			return s, false
		}
		sec = sec.Elem()
	}
	if sec.Kind() != reflect.Struct || sec.IsZero() {
		return s, false
	}
	strs := map[string]*string{"url": &s.URL, "node": &s.Node, "token_id": &s.TokenID,
		"token_secret_file": &s.TokenSecretFile, "ca_file": &s.CAFile, "fingerprint": &s.Fingerprint}
	for i := 0; i < sec.NumField(); i++ {
		key, _, _ := strings.Cut(sec.Type().Field(i).Tag.Get("toml"), ",")
		fv := sec.Field(i)
		if p, ok := strs[key]; ok && fv.Kind() == reflect.String {
			*p = fv.String()
		}
		if key == "insecure_skip_verify" && fv.Kind() == reflect.Bool {
			s.Insecure = fv.Bool()
		}
	}
	return s, true
}

// checkPVE: the token's secret file, TLS to the PVE API, the token, and its permission to
// see the node's containers.
func checkPVE(ctx context.Context, s pveSettings) []Result {
	const c = "proxmox"
	var rs []Result
	if s.URL == "" || s.Node == "" || s.TokenID == "" || s.TokenSecretFile == "" {
		return []Result{res(c, "configuration", Fail, "[proxmox] needs url, node, token_id and token_secret_file", "complete the [proxmox] section")}
	}
	secret, err := readSecret(s.TokenSecretFile)
	if err != nil {
		return []Result{res(c, "token secret", Fail, err.Error(), "chmod 0600 "+s.TokenSecretFile+" (owned by root), holding the token's secret only")}
	}
	rs = append(rs, res(c, "token secret", OK, s.TokenSecretFile+" (mode 0600 or stricter)", ""))

	tlsCfg, mode, err := pveTLS(s)
	if err != nil {
		return append(rs, res(c, "TLS", Fail, err.Error(), "set [proxmox] ca_file to the node's CA (/etc/pve/pve-root-ca.pem) or fingerprint to its certificate's SHA-256"))
	}
	base := strings.TrimSuffix(s.URL, "/")
	if !strings.HasSuffix(base, "/api2/json") {
		base += "/api2/json"
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	get := func(path string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "PVEAPIToken="+s.TokenID+"="+secret)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	code, err := get("/version")
	if err != nil {
		var uerr *url.Error
		msg := err.Error()
		if errors.As(err, &uerr) {
			msg = uerr.Err.Error()
		}
		return append(rs, res(c, "reachability", Fail, s.URL+": "+msg, "check [proxmox] url and the TLS settings (ca_file or fingerprint)"))
	}
	st := OK
	if mode == "insecure_skip_verify" {
		st = Warn
	}
	rs = append(rs, res(c, "TLS", st, "verified by "+mode, "set [proxmox] ca_file or fingerprint instead of insecure_skip_verify"))
	switch code {
	case http.StatusOK:
		rs = append(rs, res(c, "token", OK, s.TokenID+" accepted by "+s.URL, ""))
	case http.StatusUnauthorized:
		return append(rs, res(c, "token", Fail, "PVE refuses token "+s.TokenID+" (401)", "check token_id (user@realm!name) and the secret file; pveum user token list USER"))
	default:
		return append(rs, res(c, "token", Fail, fmt.Sprintf("GET /version answers %d", code), "check [proxmox] url"))
	}
	switch code, err := get("/nodes/" + url.PathEscape(s.Node) + "/lxc"); {
	case err != nil:
		rs = append(rs, res(c, "permissions", Fail, err.Error(), ""))
	case code == http.StatusOK:
		rs = append(rs, res(c, "permissions", OK, "the token may list node "+s.Node+"'s containers", ""))
	case code == http.StatusForbidden:
		rs = append(rs, res(c, "permissions", Fail, "the token may not list node "+s.Node+"'s containers (403: VM.Audit missing)",
			"pveum acl modify / --tokens "+s.TokenID+" --roles PVEVMAdmin (and privilege separation off, or the same ACL on the token)"))
	default:
		rs = append(rs, res(c, "permissions", Fail, fmt.Sprintf("GET /nodes/%s/lxc answers %d", s.Node, code), "check [proxmox] node"))
	}
	return rs
}

// readSecret reads a token secret file, refusing one others may read.
func readSecret(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("token_secret_file: %v", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token_secret_file %s is readable by group or others (mode %04o)", p, fi.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("token_secret_file: %v", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("token_secret_file %s is empty", p)
	}
	return s, nil
}

// pveTLS builds the TLS configuration [proxmox] asks for, and says how the server is verified.
func pveTLS(s pveSettings) (*tls.Config, string, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case s.Insecure:
		cfg.InsecureSkipVerify = true
		return cfg, "insecure_skip_verify", nil
	case s.Fingerprint != "":
		want := strings.ToLower(strings.ReplaceAll(s.Fingerprint, ":", ""))
		cfg.InsecureSkipVerify = true // replaced by the pin below
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no server certificate")
			}
			sum := sha256.Sum256(raw[0])
			if got := hex.EncodeToString(sum[:]); got != want {
				return fmt.Errorf("server certificate fingerprint %s does not match [proxmox] fingerprint", got)
			}
			return nil
		}
		return cfg, "fingerprint", nil
	case s.CAFile != "":
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, "", fmt.Errorf("ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("ca_file %s holds no PEM certificate", s.CAFile)
		}
		cfg.RootCAs = pool
		return cfg, "ca_file " + s.CAFile, nil
	default:
		return cfg, "the system's CAs", nil
	}
}
