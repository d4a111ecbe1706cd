package runtime

// ProxmoxVMConfig is the [proxmox-vm] section: how the proxmox-vm backend makes a QEMU VM
// for each container. The node and token are the [proxmox] section's.
type ProxmoxVMConfig struct {
	// TemplateVMID is the VM template each container's VM is cloned from; its guest must
	// run the QEMU guest agent and its config enable it (agent: 1).
	TemplateVMID int `toml:"template_vmid"`
	// FullClone copies the template's disks instead of a linked clone (the default).
	FullClone bool `toml:"full_clone"`
	// Memory is the VM memory in MiB when the spec sets no memory limit; 0 keeps the
	// template's.
	Memory int `toml:"memory"`
	// Cores is the number of vCPUs when the spec sets no CPU limit; 0 keeps the template's.
	Cores int `toml:"cores"`
	// AgentTimeout bounds the wait for the guest agent after the VM starts, as a Go
	// duration ("1m"); default 1m.
	AgentTimeout string `toml:"agent_timeout"`
}
