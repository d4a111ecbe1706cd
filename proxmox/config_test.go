package proxmox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
)

func validConfig(secretFile string) runtime.ProxmoxConfig {
	return runtime.ProxmoxConfig{
		URL:             "https://127.0.0.1:8006",
		Node:            "pve1",
		TokenID:         "root@pam!lxcri",
		TokenSecretFile: secretFile,
		Storage:         "local-zfs",
		TemplateStorage: "local",
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*runtime.ProxmoxConfig)
		errMsg string // empty: valid
	}{
		{name: "valid"},
		{name: "api path", edit: func(c *runtime.ProxmoxConfig) { c.URL = "https://pve:8006/api2/json/" }},
		{name: "no url", edit: func(c *runtime.ProxmoxConfig) { c.URL = "" }, errMsg: "[proxmox] url: required"},
		{name: "http", edit: func(c *runtime.ProxmoxConfig) { c.URL = "http://pve:8006" }, errMsg: "[proxmox] url: \"http://pve:8006\": the PVE API is served over https only"},
		{name: "userinfo", edit: func(c *runtime.ProxmoxConfig) { c.URL = "https://u:p@pve:8006" }, errMsg: "[proxmox] url:"},
		{name: "other path", edit: func(c *runtime.ProxmoxConfig) { c.URL = "https://pve:8006/x" }, errMsg: "the path may only be /api2/json"},
		{name: "node", edit: func(c *runtime.ProxmoxConfig) { c.Node = "pve/../x" }, errMsg: "[proxmox] node:"},
		{name: "token without name", edit: func(c *runtime.ProxmoxConfig) { c.TokenID = "root@pam" }, errMsg: "[proxmox] token_id: \"root@pam\": want user@realm!tokenname"},
		{name: "token with secret", edit: func(c *runtime.ProxmoxConfig) { c.TokenID = "root@pam!t=abc" }, errMsg: "[proxmox] token_id:"},
		{name: "token realm", edit: func(c *runtime.ProxmoxConfig) { c.TokenID = "root@1pam!t" }, errMsg: "[proxmox] token_id:"},
		{name: "relative secret", edit: func(c *runtime.ProxmoxConfig) { c.TokenSecretFile = "secret" }, errMsg: "[proxmox] token_secret_file:"},
		{name: "relative ca", edit: func(c *runtime.ProxmoxConfig) { c.CAFile = "ca.pem" }, errMsg: "[proxmox] ca_file:"},
		{name: "fingerprint", edit: func(c *runtime.ProxmoxConfig) { c.Fingerprint = "AB:CD" }, errMsg: "[proxmox] fingerprint:"},
		{name: "ca and fingerprint", edit: func(c *runtime.ProxmoxConfig) {
			c.CAFile = "/ca.pem"
			c.Fingerprint = strings.Repeat("AB:", 31) + "AB"
		}, errMsg: "set ca_file or fingerprint, not both"},
		{name: "insecure with ca", edit: func(c *runtime.ProxmoxConfig) { c.CAFile = "/ca.pem"; c.InsecureSkipVerify = true }, errMsg: "[proxmox] insecure_skip_verify:"},
		{name: "storage", edit: func(c *runtime.ProxmoxConfig) { c.Storage = "Local ZFS" }, errMsg: "[proxmox] storage:"},
		{name: "template storage", edit: func(c *runtime.ProxmoxConfig) { c.TemplateStorage = "" }, errMsg: "[proxmox] template_storage:"},
		{name: "timeout", edit: func(c *runtime.ProxmoxConfig) { c.Timeout = "soon" }, errMsg: "[proxmox] timeout:"},
		{name: "negative timeout", edit: func(c *runtime.ProxmoxConfig) { c.Timeout = "-1s" }, errMsg: "[proxmox] timeout:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig("/etc/lxcri/pve.secret")
			if tc.edit != nil {
				tc.edit(&c)
			}
			s, err := parseConfig(&c)
			if tc.errMsg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.baseURL != "https://"+strings.Split(strings.TrimPrefix(c.URL, "https://"), "/")[0]+"/api2/json" {
					t.Errorf("base URL %s", s.baseURL)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.errMsg) {
				t.Fatalf("error %v, want InvalidArgument containing %q", err, tc.errMsg)
			}
		})
	}
}

func TestConfigSectionIsStrict(t *testing.T) {
	c := runtime.DefaultConfig()
	err := c.Merge("test", []byte("[proxmox]\nurl = \"https://pve:8006\"\ntoken_secret = \"x\"\n"))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "proxmox.token_secret") {
		t.Fatalf("unknown key: %v", err)
	}
	if err := c.Merge("test", []byte("[proxmox]\nurl = \"https://pve:8006\"\nnode = \"pve\"\ntimeout = \"30s\"\n")); err != nil {
		t.Fatal(err)
	}
	if c.Proxmox.URL != "https://pve:8006" || c.Proxmox.Node != "pve" || c.Proxmox.Timeout != "30s" {
		t.Fatalf("decoded %+v", c.Proxmox)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	const secret = "5f0c6a43-1111-4d5e-9c59-0e1d2c3b4a59"
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		path   string
		is     func(error) bool
		errMsg string
	}{
		{name: "0600", path: write("ok", secret+"\n", 0o600)},
		{name: "0400", path: write("ro", secret, 0o400)},
		{name: "group readable", path: write("g", secret, 0o640), is: errdefs.IsFailedPrecondition, errMsg: "has mode 0640: group and others must have no access"},
		{name: "world readable", path: write("w", secret, 0o604), is: errdefs.IsFailedPrecondition, errMsg: "has mode 0604"},
		{name: "missing", path: filepath.Join(dir, "none"), is: errdefs.IsNotFound, errMsg: "does not exist"},
		{name: "directory", path: dir, is: errdefs.IsInvalidArgument, errMsg: "is not a regular file"},
		{name: "empty", path: write("e", "\n", 0o600), is: errdefs.IsInvalidArgument, errMsg: "is empty"},
		{name: "two lines", path: write("two", secret+"\n"+secret, 0o600), is: errdefs.IsInvalidArgument, errMsg: "holds whitespace"},
		{name: "semicolon", path: write("semi", secret+";x", 0o600), is: errdefs.IsInvalidArgument, errMsg: "';'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readSecret(tc.path)
			if tc.is == nil {
				if err != nil || got != secret {
					t.Fatalf("readSecret: %q %v", got, err)
				}
				return
			}
			if err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.errMsg) {
				t.Fatalf("error %v, want one containing %q", err, tc.errMsg)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error quotes the secret: %v", err)
			}
		})
	}
}

func TestNewRefusesReadableSecret(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(p, []byte("s3cr3t-value"), 0o644)
	os.Chmod(p, 0o644)
	c := validConfig(p)
	if _, err := New(context.Background(), &c); !errdefs.IsFailedPrecondition(err) || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("New with a world-readable secret: %v", err)
	}
}

func TestParseUPID(t *testing.T) {
	u, err := parseUPID("UPID:pve1:0000A1B2:0012C3D4:65F0A1B2:vzcreate:100:root@pam!lxcri:")
	if err != nil || u.node != "pve1" || u.typ != "vzcreate" || u.id != "100" {
		t.Fatalf("parse: %+v %v", u, err)
	}
	for _, bad := range []string{"", "UPID:pve1:0000A1B2:0012C3D4:65F0A1B2:vzcreate:100:root@pam", "UPID:../x:0000A1B2:0012C3D4:65F0A1B2:vzcreate:100:root@pam:", `"100"`} {
		if _, err := parseUPID(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
