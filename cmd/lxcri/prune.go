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
}

// cmdPrune frees the ZFS datasets of checkpoints that no containerd checkpoint image names
// any more: containerd's garbage collector does not reach ZFS, so removing a checkpoint
// image (ctr images rm, crictl rmi) leaves its dataset until a prune.
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
	if cfg.ZFS.Dataset == "" {
		return fmt.Errorf("no [zfs] dataset is configured in %s (or LXCRI_CONFIG), so there are no checkpoints to prune: %w", runtime.DefaultConfigPath, errdefs.ErrFailedPrecondition)
	}
	c, err := client.New(*address)
	if err != nil {
		return fmt.Errorf("connect to containerd at %s: %w", *address, err)
	}
	defer c.Close()
	res, err := ckptimages.Sweep(ctx, c, &cfg.ZFS, nil, zfsroot.SweepOptions{MinAge: *minAge, DryRun: *dryRun})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, pruneResult{DryRun: *dryRun, Freed: res.Freed, Live: res.Live, Young: res.Young, Bases: res.Bases})
	}
	verb := "freed"
	if *dryRun {
		verb = "would free"
	}
	fmt.Fprintf(stdout, "%s %d checkpoint(s)%s; kept %d named by a checkpoint image, %d younger than %v\n",
		verb, len(res.Freed), list(res.Freed), len(res.Live), len(res.Young), *minAge)
	if len(res.Bases) > 0 {
		fmt.Fprintf(stdout, "%s %d image base(s) nothing uses any more%s\n", verb, len(res.Bases), list(res.Bases))
	}
	return nil
}

func list(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return ": " + strings.Join(names, ", ")
}
