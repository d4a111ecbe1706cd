//go:build linux

package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/runtime"
)

// pveCheckTimeout bounds the PVE checks: the client retries an unreachable node with
// backoff, which must not hold `lxcri check` for the client's whole timeout.
const pveCheckTimeout = 20 * time.Second

// proxmoxUsers lists where the configuration chooses a Proxmox backend: as the default or
// in a [[route]].
func proxmoxUsers(cfg *runtime.Config) []string {
	var out []string
	isPVE := func(b string) bool { return strings.HasPrefix(b, "proxmox-") }
	if isPVE(cfg.Backend) {
		out = append(out, "backend = \""+cfg.Backend+"\"")
	}
	for i, r := range cfg.Routes {
		if isPVE(r.Backend) {
			out = append(out, fmt.Sprintf("[[route]] %d (backend %s)", i+1, r.Backend))
		}
	}
	return out
}

// checkProxmox checks the [proxmox] section when the configuration names a Proxmox backend
// or has the section; otherwise the Proxmox backends are not in use and there is nothing
// to check.
func checkProxmox(ctx context.Context, env *checkEnv) []Result {
	if env.cfg == nil {
		return nil
	}
	users := proxmoxUsers(env.cfg)
	if env.cfg.Proxmox == (runtime.ProxmoxConfig{}) {
		if len(users) == 0 {
			return nil
		}
		return []Result{res("proxmox", "configuration", Fail, configPath()+": "+strings.Join(users, ", ")+" needs a [proxmox] section, which is missing",
			"add [proxmox] with url, node, token_id, token_secret_file, storage and template_storage (see contrib/config.toml)")}
	}
	return checkPVE(ctx, &env.cfg.Proxmox)
}

// checkPVE checks a [proxmox] section the way the Proxmox backends will use it, with the
// same client: the section itself, the token's secret file, that the node's API answers
// over verified TLS, that it accepts the token, that the node and both storages exist (with
// the content types the backends need) and that the token may list the node's CTs. Each
// line says which of these fails.
func checkPVE(ctx context.Context, pc *runtime.ProxmoxConfig) []Result {
	const c = "proxmox"
	if err := proxmox.Validate(pc); err != nil {
		return []Result{res(c, "configuration", Fail, err.Error(), "correct the [proxmox] section of "+configPath())}
	}
	client, err := proxmox.New(ctx, pc)
	if err != nil {
		return []Result{res(c, "token secret", Fail, err.Error(), "chmod 0600 "+pc.TokenSecretFile+" (owned by root), holding the token's secret only")}
	}
	rs := []Result{res(c, "token secret", OK, pc.TokenSecretFile+" (mode 0600 or stricter)", "")}
	ctx, cancel := context.WithTimeout(ctx, pveCheckTimeout)
	defer cancel()

	tlsMode := "the system's CAs"
	switch {
	case pc.InsecureSkipVerify:
		tlsMode = "insecure_skip_verify"
	case pc.Fingerprint != "":
		tlsMode = "fingerprint " + pc.Fingerprint
	case pc.CAFile != "":
		tlsMode = "ca_file " + pc.CAFile
	}
	tlsFix := "set [proxmox] ca_file to the node's CA (/etc/pve/pve-root-ca.pem) or fingerprint to its certificate's SHA-256"
	v, err := client.Version(ctx)
	switch {
	case err == nil, errdefs.IsUnauthorized(err):
		// an answer, even a 401, means the node is reachable over verified TLS
		rs = append(rs, res(c, "reachability", OK, pc.URL+" answers", ""))
		if pc.InsecureSkipVerify {
			rs = append(rs, res(c, "TLS", Warn, "not verified (insecure_skip_verify)", tlsFix+" instead of insecure_skip_verify"))
		} else {
			rs = append(rs, res(c, "TLS", OK, "verified by "+tlsMode, ""))
		}
	case errdefs.IsFailedPrecondition(err):
		// the client's only FailedPrecondition before any answer is a failed verification
		// of the certificate the node presented
		rs = append(rs, res(c, "reachability", OK, pc.URL+" accepts connections", ""))
		return append(rs, res(c, "TLS", Fail, err.Error(), tlsFix))
	default:
		return append(rs, res(c, "reachability", Fail, err.Error(), "check [proxmox] url, and that pveproxy runs on the node and is reachable from this host"))
	}
	if err != nil {
		return append(rs, res(c, "token", Fail, err.Error(), "check token_id (user@realm!name) and the secret in "+pc.TokenSecretFile+"; pveum user token list USER"))
	}
	rs = append(rs, res(c, "token", OK, pc.TokenID+" accepted (PVE "+v.Version+")", ""))

	nodes, err := client.Nodes(ctx)
	if err != nil {
		return append(rs, res(c, "node", Fail, err.Error(), ""))
	}
	var names []string
	found := false
	for _, n := range nodes {
		names = append(names, n.Node)
		if n.Node != pc.Node {
			continue
		}
		found = true
		if n.Status != "online" {
			return append(rs, res(c, "node", Fail, "node "+pc.Node+" is "+n.Status, "bring node "+pc.Node+" online (the shim must run on it)"))
		}
	}
	sort.Strings(names)
	if !found {
		return append(rs, res(c, "node", Fail, fmt.Sprintf("node %s is not a node of this cluster (nodes: %s)", pc.Node, strings.Join(names, ", ")),
			"set [proxmox] node to the name of the node the shim runs on (pvecm nodes, or its hostname)"))
	}
	rs = append(rs, res(c, "node", OK, pc.Node+" online", ""))

	sts, err := client.Storages(ctx)
	if err != nil {
		return append(rs, res(c, "storage", Fail, err.Error(), ""))
	}
	byID := map[string]proxmox.StorageInfo{}
	for _, st := range sts {
		byID[st.Storage] = st
	}
	for _, want := range []struct{ key, id, content, use string }{
		{"storage", pc.Storage, "rootdir", "CT root disks"},
		{"template_storage", pc.TemplateStorage, "vztmpl", "OCI archive templates"},
	} {
		name := strings.ReplaceAll(want.key, "_", " ")
		st, ok := byID[want.id]
		switch {
		case !ok:
			rs = append(rs, res(c, name, Fail, fmt.Sprintf("[proxmox] %s %q does not exist on node %s (or the token may not see it: Datastore.Audit on /storage/%s)", want.key, want.id, pc.Node, want.id),
				fmt.Sprintf("set [proxmox] %s to a storage of node %s holding %s (pvesm status --content %s)", want.key, pc.Node, want.content, want.content)))
		case st.Enabled == 0 || st.Active == 0:
			rs = append(rs, res(c, name, Fail, fmt.Sprintf("[proxmox] %s %q is not enabled and active on node %s", want.key, want.id, pc.Node), "pvesm set "+want.id+" --disable 0, and check the storage (pvesm status)"))
		case !st.Holds(want.content):
			rs = append(rs, res(c, name, Fail, fmt.Sprintf("[proxmox] %s %q does not hold %s, which %s need (content: %s)", want.key, want.id, want.content, want.use, st.Content),
				fmt.Sprintf("pvesm set %s --content %s,%s, or choose another storage", want.id, st.Content, want.content)))
		default:
			rs = append(rs, res(c, name, OK, fmt.Sprintf("%s (%s, content %s)", want.id, st.Type, st.Content), ""))
		}
	}

	if _, err := client.CTs(ctx); err != nil {
		fix := ""
		if errdefs.IsPermissionDenied(err) {
			fix = "pveum acl modify / --tokens " + pc.TokenID + " --roles PVEVMAdmin (with privilege separation the token's own ACL counts)"
		}
		return append(rs, res(c, "permissions", Fail, err.Error(), fix))
	}
	return append(rs, res(c, "permissions", OK, "the token may list node "+pc.Node+"'s containers", ""))
}
