// Command pvesim serves an emulated Proxmox VE node (see proxmox/pvesim) until it is
// stopped, for trying and testing lxcri's Proxmox backends without a PVE node:
//
//	pvesim --listen 127.0.0.1:8006 --dir DIR
//
// It writes DIR/ca.pem (the CA to verify it with), DIR/token_secret (mode 0600) and
// DIR/lxcri.toml (lxcri's [proxmox] section, lxc_path included). Its CTs are real LXC
// containers under DIR/lxc; they are stopped and removed when pvesim stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lxcri/lxcri/proxmox/pvesim"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8006", "address to serve the API on")
	dir := flag.String("dir", "", "the emulator's directory (storages, LXC path, client files); required")
	node := flag.String("node", pvesim.DefaultNode, "node name")
	tokenID := flag.String("token-id", pvesim.DefaultTokenID, "the API token accepted, user@realm!name (its secret is generated into DIR/token_secret)")
	authDelay := flag.Duration("auth-delay", pvesim.DefaultAuthFailDelay, "delay before a 401, as PVE's 3 s (0 for none)")
	faults := flag.String("faults", "", "JSON file with faults to inject from the start (see README)")
	verbose := flag.Bool("v", false, "log every request and task")
	flag.Parse()
	if *dir == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: pvesim --listen HOST:PORT --dir DIR [--node NAME] [--token-id ID] [--auth-delay D] [--faults FILE] [-v]")
		os.Exit(2)
	}
	delay := *authDelay
	if delay == 0 {
		delay = -1 // Config's zero means the default
	}
	cfg := pvesim.Config{Listen: *listen, Dir: *dir, Node: *node, TokenID: *tokenID, AuthFailDelay: delay}
	if *verbose {
		cfg.Logf = log.Printf
	}
	s, err := pvesim.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if *faults != "" {
		if err := s.LoadFaults(*faults); err != nil {
			log.Fatal(err)
		}
	}
	if err := s.Start(); err != nil {
		log.Fatal(err)
	}
	log.Printf("pvesim: node %s serving %s; CA %s, config %s; CTs in LXC path %s, cgroups under %s", s.Node(), s.URL(),
		filepath.Join(s.Dir(), "ca.pem"), filepath.Join(s.Dir(), "lxcri.toml"), s.LXCPath(), s.CgroupPrefix())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Printf("pvesim: stopping; removing its CTs")
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			log.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		log.Fatal("pvesim: timed out stopping")
	}
}
