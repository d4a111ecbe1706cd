package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// pvesim serves until SIGTERM, having written the CA, the secret and a ready [proxmox]
// section that a client can use as it is.
func TestServeUntilStopped(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pvesim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--dir", dir, "--auth-delay", "0")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()

	var cfg struct {
		Proxmox struct {
			URL             string `toml:"url"`
			Node            string `toml:"node"`
			TokenID         string `toml:"token_id"`
			TokenSecretFile string `toml:"token_secret_file"`
			CAFile          string `toml:"ca_file"`
		} `toml:"proxmox"`
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "lxcri.toml"))
		if err == nil {
			if err := toml.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("pvesim exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	ca, err := os.ReadFile(cfg.Proxmox.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(cfg.Proxmox.TokenSecretFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", cfg.Proxmox.URL+"/api2/json/nodes/"+cfg.Proxmox.Node+"/status", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+cfg.Proxmox.TokenID+"="+strings.TrimSpace(string(secret)))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"pveversion"`) {
		t.Fatalf("node status: %s %s", resp.Status, body)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	err = <-exited
	stopped = true
	if err != nil {
		t.Fatalf("pvesim after SIGTERM: %v", err)
	}
}
