package zfs

import "context"

// ReleaseBase exposes releaseBase, whose failures ReleaseDataset and PruneBases keep to
// themselves, to the tests.
func (s *Store) ReleaseBase(ctx context.Context, snapshot string) (bool, error) {
	return s.releaseBase(ctx, snapshot)
}
