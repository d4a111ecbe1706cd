//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/backend/proxmoxvm"
	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
	"github.com/lxcri/lxcri/runtime/zfsroot/ckptimages"
)

// defaultMinAge spares checkpoints younger than this: one being taken while prune runs is
// in no checkpoint image yet.
const defaultMinAge = 10 * time.Minute

// pruneResult is prune's --json output.
type pruneResult struct {
	DryRun bool     `json:"dry_run"`
	Freed  []string `json:"freed"`
	Live   []string `json:"live"`
	Young  []string `json:"young"`
	Bases  []string `json:"bases"`
	// VMs are the proxmox-vm VMs kept for checkpoints, by VMID.
	VMs *proxmoxvm.PruneResult `json:"vms,omitempty"`
}

// cmdPrune frees the ZFS datasets of checkpoints that no containerd checkpoint image names
// any more, and destroys the proxmox-vm VMs kept for such checkpoints: containerd's
// garbage collector reaches neither ZFS nor PVE, so removing a checkpoint image (ctr images
// rm, crictl rmi) leaves its dataset or VM until a prune.
func cmdPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := newFlags("prune", "", stderr)
	address := fs.String("address", "/run/containerd/containerd.sock", "containerd's socket, whose checkpoint images are kept")
	minAge := fs.Duration("min-age", defaultMinAge, "spare checkpoints younger than this")
	dryRun := fs.Bool("dry-run", false, "say what would be freed, free nothing")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *minAge < 0 {
		return fmt.Errorf("--min-age %v is negative: %w", *minAge, errdefs.ErrInvalidArgument)
	}
	cfg, err := runtime.LoadHostConfig()
	if err != nil {
		return err
	}
	if cfg.ZFS.Dataset == "" && cfg.Proxmox.URL == "" {
		return fmt.Errorf("neither a [zfs] dataset nor a [proxmox] node is configured in %s (or LXCRI_CONFIG), so there are no checkpoints to prune: %w", runtime.DefaultConfigPath, errdefs.ErrFailedPrecondition)
	}
	c, err := client.New(*address)
	if err != nil {
		return fmt.Errorf("connect to containerd at %s: %w", *address, err)
	}
	defer c.Close()
	out := pruneResult{DryRun: *dryRun}
	if cfg.ZFS.Dataset != "" {
		res, err := ckptimages.Sweep(ctx, c, &cfg.ZFS, nil, zfsroot.SweepOptions{MinAge: *minAge, DryRun: *dryRun})
		if err != nil {
			return err
		}
		out.Freed, out.Live, out.Young, out.Bases = res.Freed, res.Live, res.Young, res.Bases
	}
	if cfg.Proxmox.URL != "" {
		if out.VMs, err = pruneVMs(ctx, c, cfg, *minAge, *dryRun); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(stdout, out)
	}
	verb := "freed"
	if *dryRun {
		verb = "would free"
	}
	if cfg.ZFS.Dataset != "" {
		fmt.Fprintf(stdout, "%s %d checkpoint(s)%s; kept %d named by a checkpoint image, %d younger than %v\n",
			verb, len(out.Freed), list(out.Freed), len(out.Live), len(out.Young), *minAge)
		if len(out.Bases) > 0 {
			fmt.Fprintf(stdout, "%s %d image base(s) nothing uses any more%s\n", verb, len(out.Bases), list(out.Bases))
		}
	}
	if v := out.VMs; v != nil {
		verb := "destroyed"
		if *dryRun {
			verb = "would destroy"
		}
		fmt.Fprintf(stdout, "%s %d VM(s) kept for checkpoints%s; kept %d named by a checkpoint image, %d with a snapshot younger than %v\n",
			verb, len(v.Freed), list(v.Freed), len(v.Live), len(v.Young), *minAge)
	}
	return nil
}

// pruneVMs destroys the proxmox-vm VMs kept for checkpoints that no checkpoint image names.
func pruneVMs(ctx context.Context, c *client.Client, cfg *runtime.Config, minAge time.Duration, dryRun bool) (*proxmoxvm.PruneResult, error) {
	files, err := ckptimages.Files(ctx, c, proxmoxvm.CheckpointFile)
	if err != nil {
		return nil, fmt.Errorf("read the live checkpoints from containerd: %w", err)
	}
	api, err := proxmox.New(ctx, &cfg.Proxmox)
	if err != nil {
		return nil, err
	}
	return proxmoxvm.Prune(ctx, api, files, proxmoxvm.PruneOptions{MinAge: minAge, DryRun: dryRun})
}

func list(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return ": " + strings.Join(names, ", ")
}
