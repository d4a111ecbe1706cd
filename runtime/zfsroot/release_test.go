//go:build linux

package zfsroot

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/containerd/containerd/api/types"

	"github.com/lxcri/lxcri/integration/zfstest"
)

// TestReleaseConcurrent: containers of one image released at the same moment (two
// `ctr rm` at once, a pod going away) all release without an error, and the last one
// takes the image's base along. The race is one of timing: it runs for rounds.
func TestReleaseConcurrent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for round := range 20 {
		var roots []*Root
		for i := range 2 {
			r, err := Setup(ctx, f.cfg, "nsa", fmt.Sprintf("r%d-%d", round, i), f.bundle(),
				[]*types.Mount{{Type: "bind", Source: f.image, Options: []string{"rbind", "ro"}}})
			if err != nil {
				t.Fatal(err)
			}
			roots = append(roots, r)
		}
		errs := make([]error, len(roots))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, r := range roots {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = r.Release(ctx)
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: release of %s: %v", round, roots[i].Dataset, err)
			}
		}
		if ds := zfstest.Datasets(t, f.pool); len(ds) != 2 {
			t.Fatalf("round %d: datasets left after both releases: %v", round, ds)
		}
	}
}
