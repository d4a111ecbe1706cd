//go:build linux

package zfsroot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
)

// SweepOptions tune Sweep.
type SweepOptions struct {
	// MinAge spares checkpoints taken less than MinAge ago: one being taken right now is
	// in no checkpoint image yet.
	MinAge time.Duration
	// DryRun reports what would be freed and frees nothing.
	DryRun bool
	// Now is the time MinAge counts back from; zero means time.Now().
	Now time.Time
}

// SweepResult says what Sweep found, by checkpoint snapshot name.
type SweepResult struct {
	// Freed were freed (with DryRun: would be).
	Freed []string
	// Live are named by a live descriptor.
	Live []string
	// Young are younger than MinAge, or of no stamp Sweep can read.
	Young []string
	// Bases are the image bases no container or checkpoint used any more, freed with them.
	Bases []string
}

// Sweep frees the checkpoints under cfg's [zfs] dataset that no live descriptor names:
// live holds the descriptors of every checkpoint still wanted (those of the checkpoint
// images containerd holds, see package zfsroot/ckptimages, and of checkpoint directories
// kept elsewhere). A freed checkpoint's data lives on in the containers restored from it.
// Then the image bases nothing uses any more are freed too. Checkpoints of other
// namespaces are swept alike: the descriptors are the whole host's. An error freeing one
// checkpoint does not stop the others; all are returned, joined.
func Sweep(ctx context.Context, cfg *runtime.ZFSConfig, live []*Descriptor, opts SweepOptions) (*SweepResult, error) {
	st, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	keep := make(map[string]bool, len(live))
	for _, d := range live {
		if d != nil {
			keep[d.Snapshot] = true
		}
	}
	cks, err := st.Checkpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("sweep of %s: %w", st.Parent, err)
	}
	res := &SweepResult{}
	var errs []error
	for _, c := range cks {
		switch taken, perr := time.Parse(stampLayout, c.Stamp); {
		case keep[c.Snapshot]:
			res.Live = append(res.Live, c.Snapshot)
		case perr != nil || now.Sub(taken) < opts.MinAge:
			res.Young = append(res.Young, c.Snapshot)
		case opts.DryRun:
			res.Freed = append(res.Freed, c.Snapshot)
		default:
			if err := st.ReleaseCheckpoint(ctx, c.Dataset); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, err)
				continue
			}
			res.Freed = append(res.Freed, c.Snapshot)
		}
	}
	if !opts.DryRun {
		bases, err := st.PruneBases(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		res.Bases = bases
	}
	slices.Sort(res.Freed)
	return res, errors.Join(errs...)
}
