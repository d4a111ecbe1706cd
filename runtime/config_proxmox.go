package runtime

// ProxmoxConfig is the [proxmox] section: how the Proxmox backends reach the PVE API of the
// node the shim runs on. It holds no secret, only the path of the file that does, because
// the configuration is written into the bundle's crash record.
type ProxmoxConfig struct {
	// URL is the API's address, e.g. "https://127.0.0.1:8006" (the /api2/json suffix is
	// optional).
	URL string `toml:"url"`
	// Node is the PVE node name the shim runs on.
	Node string `toml:"node"`
	// TokenID is the API token, "user@realm!name".
	TokenID string `toml:"token_id"`
	// TokenSecretFile holds the token's secret; it must not be accessible by group or
	// others.
	TokenSecretFile string `toml:"token_secret_file"`
	// CAFile is a PEM bundle that verifies the node's certificate (e.g. the cluster's
	// pve-root-ca.pem). Without it and Fingerprint, the system roots verify it.
	CAFile string `toml:"ca_file"`
	// Fingerprint pins the node's certificate by its SHA-256 fingerprint, as the PVE UI
	// shows it ("AB:CD:..."), instead of a CA.
	Fingerprint string `toml:"fingerprint"`
	// InsecureSkipVerify turns TLS verification off; every client built so logs a warning.
	InsecureSkipVerify bool `toml:"insecure_skip_verify"`
	// Storage holds the CTs' root disks (e.g. "local-zfs"); it must support snapshots for
	// checkpoint and restore.
	Storage string `toml:"storage"`
	// TemplateStorage holds the OCI archives CTs are made from (content vztmpl).
	TemplateStorage string `toml:"template_storage"`
	// LXCPath is the node's LXC path, where PVE keeps each CT's LXC configuration (the
	// backends attach to CTs through it, as `pct exec` does); default /var/lib/lxc.
	LXCPath string `toml:"lxc_path"`
	// Timeout bounds each API call (retries included) and each task PVE runs for us, as a
	// Go duration ("2m"); default 2m.
	Timeout string `toml:"timeout"`
}
