// Package zfs keeps container root filesystems on ZFS datasets, the groundwork of lxcri's
// checkpoint and restore: a checkpoint of a filesystem is a snapshot (O(1) whatever the data
// size), a restore is a clone or a rollback, and a checkpoint travels as a send stream.
//
// It is a thin layer over github.com/mistifyio/go-zfs/v4 (which drives the zfs and zpool
// commands) that adds what lxcri needs around it:
//
//   - a Store confined to one parent dataset (e.g. tank/lxcri): every name a method takes
//     must lie at or below Store.Parent, so a wrong name cannot reach other datasets;
//   - contexts: go-zfs takes none, so every method runs the go-zfs call aside and returns
//     as soon as ctx ends. Send and Receive then also stop their zfs process (its pipe is
//     closed); other commands, which are short metadata operations, run to their end in
//     the background, and one that then turns out to have created a dataset or snapshot
//     has it destroyed again. go-zfs's own process timeout (zfs.SetRunner) still applies;
//   - errors: *Error naming the operation and the dataset, with errdefs sentinels
//     (NotFound, AlreadyExists, FailedPrecondition for a full pool, ...);
//   - retries: zfs-fuse answers "dataset is busy" right after a create, clone or receive
//     (and any ZFS while a mount is held for a moment): destroy and rollback retry for up
//     to BusyTimeout;
//   - no partial results: a create, clone, receive or base that fails leaves no dataset;
//   - streams from elsewhere stay inert: Receive leaves the dataset unmounted, with the
//     stream's mountpoint and sharing properties excluded and canmount=noauto, until
//     Mount; CheckPlainStream refuses streams that carry properties or descendants;
//   - per-image bases shared by containers: BaseFor, CloneForContainer, ReleaseContainer;
//   - checkpoints that outlive their container: KeepCheckpoint, ReleaseCheckpoint.
//     Which containers use a base is derived from ZFS itself (the base snapshot's clones),
//     so nothing is kept in memory and several processes may share a Store's parent.
//
// Dataset layout under Parent:
//
//	<parent>/base-<imageKey>        the image's root filesystem, populated once
//	<parent>/base-<imageKey>@base   its snapshot, the origin of the containers' clones
//	<parent>/ct-<id>                a container's root filesystem, a clone of a base (or
//	                                a received stream, or a clone of its last checkpoint)
//	<parent>/ckpt-<id>--<stamp>     a checkpoint of container id, kept until released:
//	<parent>/ckpt-<id>--<stamp>@ckpt-<stamp>  its snapshot, which restores clone
//	                                (see KeepCheckpoint)
//
// Production hosts run OpenZFS, where go-zfs works as it is. The test hosts run zfs-fuse
// 0.7.0, whose older command line needs lxcri's translation layer (integration/zfstest)
// first on PATH.
package zfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	gozfs "github.com/mistifyio/go-zfs/v4"
)

const (
	// DefaultBusyTimeout is how long an operation refused with "dataset is busy" is retried.
	DefaultBusyTimeout = 2 * time.Second
	// BaseSnapshot is the name of the snapshot of a base dataset that containers clone.
	BaseSnapshot = "base"

	basePrefix      = "base-"
	containerPrefix = "ct-"
	// populatingProp marks a base being populated with "<pid>:<start time>" of the process
	// doing it.
	populatingProp = "lxcri:populating"
	awaitPoll      = 100 * time.Millisecond

	// streamGrace is how long Send and Receive, when ctx ends, wait for the caller's writer
	// or reader to return from a call in progress.
	streamGrace = 2 * time.Second
	// cleanupTimeout bounds the clean-up a failed or abandoned operation does afterwards.
	cleanupTimeout = 30 * time.Second
	// maxNameLen is ZFS's limit on a full dataset or snapshot name (MAXNAMELEN - 1).
	maxNameLen = 255
)

// Store manages datasets below one parent dataset. Its zero value with Parent set is ready
// to use; it keeps no state, so Stores of several processes may share one parent.
type Store struct {
	// Parent is the dataset everything lives below, e.g. "tank/lxcri".
	Parent string
	// BusyTimeout bounds the retries of an operation zfs refuses with "dataset is busy".
	// Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// LockDir holds the lock files that keep two processes of the host from releasing
	// one base at once. Empty means DefaultLockDir.
	LockDir string
}

// Dataset returns the name of the dataset Parent/elem[0]/elem[1]/...
func (s *Store) Dataset(elem ...string) string {
	return strings.Join(append([]string{s.Parent}, elem...), "/")
}

// BaseDataset returns the dataset that holds the root filesystem of imageKey.
func (s *Store) BaseDataset(imageKey string) string { return s.Dataset(basePrefix + imageKey) }

// ContainerDataset returns the dataset that holds the root filesystem of container id.
func (s *Store) ContainerDataset(id string) string { return s.Dataset(ContainerLeaf(id)) }

// EnsureParent creates Parent and its missing ancestors. The pool must exist (NotFound).
func (s *Store) EnsureParent(ctx context.Context) error {
	const op = "create"
	if err := checkName(s.Parent, false); err != nil {
		return invalid(op, s.Parent, "bad parent dataset: "+err.Error())
	}
	parts := strings.Split(s.Parent, "/")
	if _, err := s.property(ctx, op, parts[0], "type"); err != nil {
		return err
	}
	for i := 2; i <= len(parts); i++ {
		name := strings.Join(parts[:i], "/")
		ok, err := s.exists(ctx, op, name)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		err = s.do(ctx, op, name, func() error {
			_, err := gozfs.CreateFilesystem(name, nil)
			return err
		}, nil)
		if err != nil && !errdefs.IsAlreadyExists(err) { // another process was quicker
			return err
		}
	}
	return nil
}

// CreateDataset creates the filesystem name (its parent must exist) with the given ZFS
// properties. It fails with AlreadyExists when name exists. Nothing is left behind when it
// fails.
func (s *Store) CreateDataset(ctx context.Context, name string, props map[string]string) error {
	const op = "create"
	if err := s.check(op, name, false); err != nil {
		return err
	}
	// Look first: zfs checks the properties before the name, and the clean-up after a
	// failure must not destroy a dataset that was there before.
	if err := s.absent(ctx, op, name); err != nil {
		return err
	}
	err := s.do(ctx, op, name, func() error {
		_, err := gozfs.CreateFilesystem(name, props)
		return err
	}, func() { s.destroyLeftover(name) })
	if err != nil && !errdefs.IsAlreadyExists(err) && !isContextErr(err) {
		s.destroyLeftover(name)
	}
	return err
}

// Snapshot takes the snapshot dataset@snap and returns its full name.
func (s *Store) Snapshot(ctx context.Context, dataset, snap string) (string, error) {
	const op = "snapshot"
	name := dataset + "@" + snap
	if err := s.check(op, name, true); err != nil {
		return "", err
	}
	// zfs itself, not go-zfs's Snapshot, which lists the new snapshot with all its
	// properties afterwards: that listing costs more than the snapshot.
	err := s.do(ctx, op, name, func() error {
		return runZFS(nil, nil, "snapshot", name)
	}, func() { s.destroyLeftover(name) })
	if err != nil {
		return "", err
	}
	return name, nil
}

// Clone creates the filesystem dataset as a clone of snapshot, with the given ZFS
// properties; ZFS mounts it as it makes it (unless canmount or mountpoint say otherwise).
// The parent of dataset must exist (NotFound). It fails with AlreadyExists when dataset
// exists. Nothing is left behind when it fails.
//
// It is one `zfs clone`: go-zfs's Clone runs `zfs clone -p` (which succeeds without doing
// anything when dataset exists, so it needed a look first) and lists the clone with all
// its properties afterwards, three commands where a restore needs one.
func (s *Store) Clone(ctx context.Context, snapshot, dataset string, props map[string]string) error {
	const op = "clone"
	if err := s.check(op, snapshot, true); err != nil {
		return err
	}
	if err := s.check(op, dataset, false); err != nil {
		return err
	}
	args := []string{"clone"}
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-o", k+"="+props[k])
	}
	args = append(args, snapshot, dataset)
	err := s.do(ctx, op, dataset, func() error {
		return runZFS(nil, nil, args...)
	}, func() { s.destroyClone(dataset, snapshot) })
	if err != nil && createdAnyway(err) {
		// zfs made the clone but failed after (it could not mount it): undo
		s.destroyClone(dataset, snapshot)
	}
	return err
}

// createdAnyway says whether a failed zfs create or clone made the dataset all the same
// ("filesystem successfully created, but not mounted"). Any other failure made nothing,
// and a dataset there is not ours to destroy.
func createdAnyway(err error) bool {
	return err != nil && !isContextErr(err) && strings.Contains(err.Error(), "successfully created")
}

// Rollback returns the snapshot's dataset to snapshot. It fails (FailedPrecondition) when
// newer snapshots exist: they are not destroyed.
func (s *Store) Rollback(ctx context.Context, snapshot string) error {
	const op = "rollback"
	if err := s.check(op, snapshot, true); err != nil {
		return err
	}
	return s.retryBusy(ctx, op, snapshot, func() error {
		return (&gozfs.Dataset{Name: snapshot, Type: gozfs.DatasetSnapshot}).Rollback(false)
	})
}

// Send writes a full replication stream of snapshot to w. When ctx ends, the zfs process
// is stopped (its pipe is closed) and Send returns once a Write in progress has returned
// (it waits streamGrace for that, then leaves a blocked Write to w); w is not written to
// after Send returned.
func (s *Store) Send(ctx context.Context, snapshot string, w io.Writer) error {
	const op = "send"
	if err := s.check(op, snapshot, true); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return wrap(op, snapshot, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return wrap(op, snapshot, err)
	}
	g := &guard{}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(guardedWriter{g, w}, pr)
		pr.Close() // a writer that failed stops zfs send with EPIPE
		copied <- err
	}()
	sent := make(chan error, 1)
	go func() {
		err := (&gozfs.Dataset{Name: snapshot, Type: gozfs.DatasetSnapshot}).SendSnapshot(pw)
		pw.Close() // the copy sees EOF once it has drained the pipe
		sent <- err
	}()

	var sendErr error
	select {
	case sendErr = <-sent:
	case <-ctx.Done():
		pr.Close() // zfs send ends on EPIPE
		g.stop()
		return wrap(op, snapshot, ctx.Err())
	}
	var copyErr error
	select {
	case copyErr = <-copied:
	case <-ctx.Done():
		pr.Close()
		g.stop()
		return wrap(op, snapshot, ctx.Err())
	}
	if copyErr != nil && !errors.Is(copyErr, os.ErrClosed) {
		return wrap(op, snapshot, fmt.Errorf("write stream: %w", copyErr))
	}
	return wrap(op, snapshot, sendErr)
}

// guard keeps the goroutine copying a stream from using the caller's reader or writer
// once Send or Receive gave up on it (see stop).
type guard struct {
	mu      sync.Mutex
	stopped bool
}

var errStopped = errors.New("stream abandoned")

func (g *guard) do(f func() (int, error)) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return 0, errStopped
	}
	return f()
}

// stop waits for a Read or Write in progress to return, for up to streamGrace, and makes
// the next ones fail without touching the caller's reader or writer.
func (g *guard) stop() {
	done := make(chan struct{})
	go func() {
		g.mu.Lock()
		g.stopped = true
		g.mu.Unlock()
		close(done)
	}()
	t := time.NewTimer(streamGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

type guardedWriter struct {
	g *guard
	w io.Writer
}

func (w guardedWriter) Write(p []byte) (int, error) {
	return w.g.do(func() (int, error) { return w.w.Write(p) })
}

type guardedReader struct {
	g *guard
	r io.Reader
}

func (r guardedReader) Read(p []byte) (int, error) {
	return r.g.do(func() (int, error) { return r.r.Read(p) })
}

// Destroy destroys the dataset name with its snapshots and descendants, or the snapshot
// name. zfs answering "dataset is busy" is retried for up to BusyTimeout. It fails with
// NotFound when name does not exist, FailedPrecondition when a snapshot has clones.
func (s *Store) Destroy(ctx context.Context, name string) error {
	const op = "destroy"
	isSnap := strings.Contains(name, "@")
	if err := s.check(op, name, isSnap); err != nil {
		return err
	}
	var flags gozfs.DestroyFlag = gozfs.DestroyRecursive
	if isSnap {
		flags = gozfs.DestroyDefault
	}
	return s.retryBusy(ctx, op, name, func() error {
		return (&gozfs.Dataset{Name: name}).Destroy(flags)
	})
}

// Exists says whether the dataset or snapshot name exists.
func (s *Store) Exists(ctx context.Context, name string) (bool, error) {
	const op = "exists"
	if err := s.check(op, name, strings.Contains(name, "@")); err != nil {
		return false, err
	}
	return s.exists(ctx, op, name)
}

// ListSnapshots returns the full names of dataset's own snapshots (not those of its
// descendants), oldest first.
func (s *Store) ListSnapshots(ctx context.Context, dataset string) ([]string, error) {
	const op = "list snapshots"
	if err := s.check(op, dataset, false); err != nil {
		return nil, err
	}
	// names only: go-zfs's Snapshots lists every property of every snapshot
	var out bytes.Buffer
	err := s.do(ctx, op, dataset, func() error {
		out.Reset()
		return runZFS(nil, &out, "list", "-H", "-o", "name", "-t", "snapshot", "-r", dataset)
	}, nil)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(n, dataset+"@") {
			names = append(names, n)
		}
	}
	return names, nil
}

// Mountpoint returns where the filesystem dataset is mounted. It fails with
// FailedPrecondition when ZFS does not mount it (mountpoint none or legacy, not mounted).
func (s *Store) Mountpoint(ctx context.Context, dataset string) (string, error) {
	const op = "mountpoint"
	if err := s.check(op, dataset, false); err != nil {
		return "", err
	}
	mp, mounted, err := s.mountState(ctx, op, dataset)
	if err != nil {
		return "", err
	}
	if !mounted {
		return "", &Error{Op: op, Name: dataset, Msg: "not mounted (mountpoint " + mp + ")", Kind: errdefs.ErrFailedPrecondition}
	}
	return mp, nil
}

// mountState returns the path ZFS mounts the filesystem dataset at and whether it is
// mounted there; a dataset ZFS mounts at no path (mountpoint none or legacy) is
// FailedPrecondition.
func (s *Store) mountState(ctx context.Context, op, dataset string) (string, bool, error) {
	v, err := s.properties(ctx, op, dataset, "mountpoint", "mounted")
	if err != nil {
		return "", false, err
	}
	mp := v["mountpoint"]
	if !strings.HasPrefix(mp, "/") {
		return "", false, &Error{Op: op, Name: dataset, Msg: fmt.Sprintf("mountpoint is %q", mp), Kind: errdefs.ErrFailedPrecondition}
	}
	return mp, v["mounted"] == "yes", nil
}

// BaseFor returns the base snapshot (<parent>/base-<imageKey>@base) of an image, making it
// when it does not exist: the dataset base-<imageKey> is created, populated by
// populate(dir), dir being its mountpoint, and snapshotted. Parent must exist.
//
// The snapshot marks a complete base. While the dataset is being populated, its user
// property lxcri:populating names the process doing it (PID and start time): other
// callers, in this process or others, wait for the snapshot (bounded by ctx) instead of
// populating it too, and a base left half-made by a process that is gone is destroyed and
// made again. Nothing is left behind when populate or ZFS fails (a full pool is
// FailedPrecondition).
func (s *Store) BaseFor(ctx context.Context, imageKey string, populate func(dir string) error) (string, error) {
	const op = "base"
	base := s.BaseDataset(imageKey)
	snap := base + "@" + BaseSnapshot
	if err := checkComponent(imageKey); err != nil {
		return "", invalid(op, base, "bad image key: "+err.Error())
	}
	if err := s.check(op, snap, true); err != nil {
		return "", err
	}
	for {
		if ok, err := s.exists(ctx, op, snap); err != nil || ok {
			return snap, err
		}
		err := s.CreateDataset(ctx, base, map[string]string{populatingProp: self})
		if err == nil {
			break // ours to populate
		}
		if !errdefs.IsAlreadyExists(err) {
			return "", err
		}
		if err := s.awaitBase(ctx, base, snap); err != nil {
			return "", err
		}
	}

	fail := func(err error) (string, error) {
		s.destroyLeftover(base)
		return "", err
	}
	dir, err := s.Mountpoint(ctx, base)
	if err != nil {
		return fail(err)
	}
	if err := populate(dir); err != nil {
		return fail(wrap(op, base, fmt.Errorf("populate %s: %w", dir, err)))
	}
	if _, err := s.Snapshot(ctx, base, BaseSnapshot); err != nil {
		return fail(err)
	}
	return snap, nil
}

// awaitBase waits until the base another caller populates is complete (snap exists) or
// gone, destroying it when the process populating it is gone. nil means: look again.
func (s *Store) awaitBase(ctx context.Context, base, snap string) error {
	const op = "base"
	for {
		if ok, err := s.exists(ctx, op, snap); err != nil || ok {
			return err
		}
		owner, err := s.property(ctx, op, base, populatingProp)
		if errdefs.IsNotFound(err) {
			return nil // its populate failed: try ourselves
		}
		if err != nil {
			return err
		}
		if !alive(owner) {
			if ok, err := s.exists(ctx, op, snap); err != nil || ok {
				return err
			}
			s.destroyLeftover(base)
			return nil
		}
		t := time.NewTimer(awaitPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return wrap(op, base, fmt.Errorf("waiting for %s (populated by process %s): %w", snap, owner, ctx.Err()))
		}
	}
}

// CloneForContainer clones base (a snapshot BaseFor returned) into the container's
// dataset <parent>/ct-<id> and returns where it is mounted. A base released in the
// meantime gives NotFound: call BaseFor again.
func (s *Store) CloneForContainer(ctx context.Context, base, id string) (string, error) {
	const op = "clone"
	ct := s.ContainerDataset(id)
	if err := checkComponent(id); err != nil {
		return "", invalid(op, ct, "bad container id: "+err.Error())
	}
	if err := s.Clone(ctx, base, ct, nil); err != nil {
		return "", err
	}
	mp, err := s.Mountpoint(ctx, ct)
	if err != nil {
		s.destroyClone(ct, base)
		return "", err
	}
	return mp, nil
}

// ReleaseContainer releases the container's dataset (ReleaseDataset): whatever was
// cloned from it survives, and its base goes when no other container uses it. It fails
// with NotFound when the container has no dataset.
func (s *Store) ReleaseContainer(ctx context.Context, id string) error {
	const op = "release"
	ct := s.ContainerDataset(id)
	if err := checkComponent(id); err != nil {
		return invalid(op, ct, "bad container id: "+err.Error())
	}
	return s.ReleaseDataset(ctx, ct)
}

// PruneBases destroys the bases no container uses (left, for instance, by a process that
// died between destroying a container's clone and its base) and returns their names.
func (s *Store) PruneBases(ctx context.Context) ([]string, error) {
	const op = "prune"
	if err := s.check(op, s.Parent, false); err != nil {
		return nil, err
	}
	snaps, err := s.do2(ctx, op, s.Parent, func() ([]*gozfs.Dataset, error) { return gozfs.Snapshots(s.Parent) })
	if err != nil {
		return nil, err
	}
	var pruned []string
	for _, d := range snaps {
		if !s.isBase(d.Name) {
			continue
		}
		destroyed, err := s.releaseBase(ctx, d.Name)
		if err != nil {
			return pruned, err
		}
		if destroyed {
			pruned = append(pruned, strings.TrimSuffix(d.Name, "@"+BaseSnapshot))
		}
	}
	return pruned, nil
}

// releaseBase destroys the base dataset of snapshot when the snapshot has no clones
// (OpenZFS's clones property; zfs-fuse's translation layer derives it from the origins).
// Losing a race (a new clone, or another releaser) is not an error.
//
// The last containers of an image are often released at the same moment (a pod going
// away): each then finds the base without clones. Two `zfs destroy` of one dataset at once
// make the slower fail half-way ("umount: ... not mounted", as the other unmounted it
// first), so the releases of a base take turns under a host-wide lock, and the later one
// finds the base gone.
func (s *Store) releaseBase(ctx context.Context, snapshot string) (bool, error) {
	unlock, err := s.lock(ctx, "release", strings.TrimSuffix(snapshot, "@"+BaseSnapshot))
	if err != nil {
		return false, err
	}
	defer unlock()
	clones, err := s.property(ctx, "release", snapshot, "clones")
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if c := strings.TrimSpace(clones); c != "" && c != "-" {
		return false, nil // still used
	}
	err = s.Destroy(ctx, strings.TrimSuffix(snapshot, "@"+BaseSnapshot))
	switch {
	case err == nil:
		return true, nil
	case errdefs.IsNotFound(err):
		return false, nil
	case errdefs.IsFailedPrecondition(err) && strings.Contains(err.Error(), "dependent clones"):
		return false, nil // cloned in the meantime
	}
	return false, err
}

func (s *Store) isBase(snapshot string) bool {
	ds, snap, ok := strings.Cut(snapshot, "@")
	return ok && snap == BaseSnapshot && strings.HasPrefix(ds, s.Parent+"/"+basePrefix) &&
		!strings.Contains(strings.TrimPrefix(ds, s.Parent+"/"), "/")
}

// --- plumbing -----------------------------------------------------------------------

func (s *Store) busyTimeout() time.Duration {
	if s.BusyTimeout > 0 {
		return s.BusyTimeout
	}
	return DefaultBusyTimeout
}

// check validates name and that it lies at or below Parent.
func (s *Store) check(op, name string, snapshot bool) error {
	if s.Parent == "" {
		return invalid(op, name, "Store has no Parent")
	}
	if err := checkName(name, snapshot); err != nil {
		return invalid(op, name, err.Error())
	}
	ds, _, _ := strings.Cut(name, "@")
	if ds != s.Parent && !strings.HasPrefix(ds, s.Parent+"/") {
		return invalid(op, name, "outside the store's parent "+s.Parent)
	}
	return nil
}

// do runs fn (a go-zfs call) aside and returns its error, wrapped, or ctx's error as soon
// as ctx ends. In that case undo, when set, runs once fn has succeeded after all.
func (s *Store) do(ctx context.Context, op, name string, fn func() error, undo func()) error {
	if err := ctx.Err(); err != nil {
		return wrap(op, name, err)
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return wrap(op, name, err)
	case <-ctx.Done():
		if undo != nil {
			go func() {
				if <-done == nil {
					undo()
				}
			}()
		}
		return wrap(op, name, ctx.Err())
	}
}

func (s *Store) do2(ctx context.Context, op, name string, fn func() ([]*gozfs.Dataset, error)) ([]*gozfs.Dataset, error) {
	var out []*gozfs.Dataset
	err := s.do(ctx, op, name, func() (err error) {
		out, err = fn()
		return err
	}, nil)
	return out, err
}

// retryBusy runs fn until zfs stops answering "dataset is busy", for up to BusyTimeout.
func (s *Store) retryBusy(ctx context.Context, op, name string, fn func() error) error {
	deadline := time.Now().Add(s.busyTimeout())
	delay := 10 * time.Millisecond
	for {
		err := s.do(ctx, op, name, fn, nil)
		if err == nil || !isBusy(err) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return wrap(op, name, ctx.Err())
		}
		if delay *= 2; delay > 250*time.Millisecond {
			delay = 250 * time.Millisecond
		}
	}
}

func (s *Store) property(ctx context.Context, op, name, prop string) (string, error) {
	var v string
	err := s.do(ctx, op, name, func() (err error) {
		v, err = (&gozfs.Dataset{Name: name}).GetProperty(prop)
		return err
	}, nil)
	return v, err
}

// properties reads several properties of name with one zfs command (go-zfs's GetProperty
// reads one); a property zfs does not print is missing from the map.
func (s *Store) properties(ctx context.Context, op, name string, props ...string) (map[string]string, error) {
	var out bytes.Buffer
	err := s.do(ctx, op, name, func() error {
		out.Reset()
		return runZFS(nil, &out, "get", "-H", "-o", "property,value", strings.Join(props, ","), name)
	}, nil)
	if err != nil {
		return nil, err
	}
	v := make(map[string]string, len(props))
	for _, l := range strings.Split(out.String(), "\n") {
		if k, val, ok := strings.Cut(l, "\t"); ok {
			v[k] = val
		}
	}
	return v, nil
}

// absent fails with AlreadyExists when name exists.
func (s *Store) absent(ctx context.Context, op, name string) error {
	ok, err := s.exists(ctx, op, name)
	if err != nil {
		return err
	}
	if ok {
		return &Error{Op: op, Name: name, Msg: "dataset already exists", Kind: errdefs.ErrAlreadyExists}
	}
	return nil
}

func (s *Store) exists(ctx context.Context, op, name string) (bool, error) {
	_, err := s.property(ctx, op, name, "type")
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// destroyLeftover destroys name if it exists, after a failure or an abandoned call, on a
// context of its own (the caller's may be gone).
func (s *Store) destroyLeftover(name string) { s.destroyClone(name, "") }

// destroyClone destroys name if it exists and, unless origin is "", is a clone of origin.
func (s *Store) destroyClone(name, origin string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if origin != "" {
		if o, err := s.property(ctx, "destroy", name, "origin"); err != nil || o != origin {
			return
		}
	} else if ok, err := s.exists(ctx, "destroy", name); err != nil || !ok {
		return
	}
	_ = s.Destroy(ctx, name)
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// checkName validates a dataset name (pool/a/b) or, with snapshot, a snapshot name (pool/a@s).
func checkName(name string, snapshot bool) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("name is longer than %d bytes", maxNameLen)
	}
	ds, snap, isSnap := strings.Cut(name, "@")
	if isSnap != snapshot {
		if snapshot {
			return errors.New("not a snapshot name (dataset@snapshot)")
		}
		return errors.New("a snapshot name where a dataset is wanted")
	}
	for _, c := range strings.Split(ds, "/") {
		if err := checkComponent(c); err != nil {
			return err
		}
	}
	if isSnap {
		return checkComponent(snap)
	}
	return nil
}

// checkComponent validates one element of a name: letters, digits, _ - . : only.
func checkComponent(c string) error {
	if c == "" {
		return errors.New("empty name component")
	}
	if c == "." || c == ".." {
		return fmt.Errorf("name component %q", c)
	}
	for _, r := range c {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '_', r == '-', r == '.', r == ':':
		default:
			return fmt.Errorf("invalid character %q in %q", r, c)
		}
	}
	return nil
}

// self identifies this process in populatingProp: PID and start time (clock ticks since
// boot), so a PID used again by another process does not pass for this one.
var self = func() string {
	pid := os.Getpid()
	return strconv.Itoa(pid) + ":" + startTime(pid)
}()

// alive says whether the process an owner string (see self) names still runs.
func alive(owner string) bool {
	pid, start, ok := strings.Cut(owner, ":")
	n, err := strconv.Atoi(pid)
	if !ok || err != nil || n <= 0 {
		return false
	}
	st := startTime(n)
	return st != "" && st == start
}

// startTime returns field 22 of /proc/<pid>/stat, "" when the process does not exist.
func startTime(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold blanks and parentheses
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return ""
	}
	return f[19]
}
