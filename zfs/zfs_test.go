//go:build linux

package zfs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	gozfs "github.com/mistifyio/go-zfs/v4"

	"github.com/lxcri/lxcri/integration/zfstest"
	"github.com/lxcri/lxcri/zfs"
)

// commands counts the zfs commands go-zfs starts, by subcommand (go-zfs's logger is
// process-wide, so it is installed once).
var commands = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

type cmdCounter struct{}

// With LXCRI_ZFS_TRACE set, every zfs command is printed with its duration.
var (
	trace   = os.Getenv("LXCRI_ZFS_TRACE") != ""
	started sync.Map // go-zfs command ID -> traceStart
)

type traceStart struct {
	at  time.Time
	cmd string
}

func (cmdCounter) Log(cmd []string) {
	if trace && len(cmd) >= 2 {
		if cmd[1] == "START" && len(cmd) >= 3 {
			started.Store(cmd[0], traceStart{time.Now(), cmd[2]})
		} else if v, ok := started.LoadAndDelete(cmd[0]); ok {
			st := v.(traceStart)
			fmt.Fprintf(os.Stderr, "zfs trace: %5dms %s\n", time.Since(st.at).Milliseconds(), st.cmd)
		}
	}
	if len(cmd) < 3 || cmd[1] != "START" {
		return
	}
	f := strings.Fields(cmd[2])
	if len(f) < 2 {
		return
	}
	commands.Lock()
	commands.n[filepath.Base(f[0])+" "+f[1]]++
	commands.Unlock()
}

func countOf(sub string) int {
	commands.Lock()
	defer commands.Unlock()
	return commands.n[sub]
}

func init() { gozfs.SetLogger(cmdCounter{}) }

const testBusyTimeout = 15 * time.Second

// newStore returns a Store on a fresh parent dataset below pool; at the end of t it checks
// that the test left nothing below the parent and destroys it.
func newStore(t *testing.T, pool string) *zfs.Store {
	t.Helper()
	ctx := context.Background()
	s := &zfs.Store{
		Parent: pool + "/" + strings.NewReplacer("/", "-", "#", "-").Replace(t.Name()),
		// zfs-fuse's "dataset is busy" window grows with the machine's load (seen: well
		// over a second on a busy 2-core host); the default of 2s is for production.
		BusyTimeout: testBusyTimeout,
	}
	if err := s.EnsureParent(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if left := below(t, s.Parent); len(left) > 0 {
			t.Errorf("left below %s: %v", s.Parent, left)
		}
		if err := s.Destroy(ctx, s.Parent); err != nil {
			t.Errorf("destroy parent: %v", err)
		}
	})
	return s
}

// below lists the datasets and snapshots below (not including) parent, with the real zfs.
func below(t testing.TB, parent string) []string {
	pool, _, _ := strings.Cut(parent, "/")
	var out []string
	for _, d := range zfstest.Datasets(t, pool) {
		if strings.HasPrefix(d, parent+"/") || strings.HasPrefix(d, parent+"@") {
			out = append(out, d)
		}
	}
	return out
}

// writeRandom writes size pseudo-random bytes (incompressible) to path.
func writeRandom(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func sum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func mustMountpoint(t *testing.T, s *zfs.Store, ds string) string {
	t.Helper()
	mp, err := s.Mountpoint(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	return mp
}

func TestStore(t *testing.T) {
	pool, _ := zfstest.Pool(t)
	poolMnt := zfstest.Mountpoint(t, pool)
	// Runs before the pool's cleanup: the suite must have left nothing behind.
	t.Cleanup(func() {
		if ds := zfstest.Datasets(t, pool); len(ds) != 1 {
			t.Errorf("datasets left in %s: %v", pool, ds)
		}
		if m := zfstest.Mounts(poolMnt); len(m) != 1 {
			t.Errorf("mounts left under %s: %v", poolMnt, m)
		}
		if c := zfsChildren(); len(c) > 0 {
			t.Errorf("zfs commands still running: %v", c)
		}
	})

	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, pool) })
	t.Run("SendReceive", func(t *testing.T) { testSendReceive(t, pool) })
	t.Run("ReceiveProperties", func(t *testing.T) { testReceiveProperties(t, pool) })
	t.Run("ReceiveChecked", func(t *testing.T) { testReceiveChecked(t, pool) })
	t.Run("PlainStream", func(t *testing.T) { testPlainStream(t, pool) })
	t.Run("DestroyBusy", func(t *testing.T) { testDestroyBusy(t, pool) })
	t.Run("BaseRefcount", func(t *testing.T) { testBaseRefcount(t, pool) })
	t.Run("BaseRace", func(t *testing.T) { testBaseRace(t, pool) })
	t.Run("ReleaseRace", func(t *testing.T) { testReleaseRace(t, pool) })
	t.Run("Checkpoints", func(t *testing.T) { testCheckpoints(t, pool) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, pool) })
	t.Run("Context", func(t *testing.T) { testContext(t, pool) })
	t.Run("SnapshotTiming", func(t *testing.T) { testSnapshotTiming(t, pool) })
	t.Run("FullPool", testFullPool) // a pool of its own
}

// zfsChildren lists this process's children that are zfs or zpool commands (or their
// translation layer), "pid command" each.
func zfsChildren() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		st := string(b)
		i := strings.LastIndexByte(st, ')')
		f := strings.Fields(st[i+1:])
		if len(f) < 2 || f[1] != fmt.Sprint(os.Getpid()) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cmd := strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
		if strings.Contains(cmd, "zfs ") || strings.Contains(cmd, "zpool ") || strings.HasSuffix(cmd, "/zfs") {
			out = append(out, e.Name()+" "+cmd)
		}
	}
	return out
}

// testLifecycle: files written, snapshot, changed, rollback restores them; a clone of the
// snapshot sees the old files and is independent of its origin.
func testLifecycle(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	for _, tc := range []struct {
		name  string
		props map[string]string
		size  int64
	}{
		{"plain", nil, 64 << 10},
		{"props", map[string]string{"compression": "on", "atime": "off", "lxcri:test": "yes"}, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := s.Dataset("ds-" + tc.name)
			if err := s.CreateDataset(ctx, ds, tc.props); err != nil {
				t.Fatal(err)
			}
			mp := mustMountpoint(t, s, ds)
			if err := writeRandom(filepath.Join(mp, "data"), tc.size, 1); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mp, "keep"), []byte("v1"), 0o644); err != nil {
				t.Fatal(err)
			}
			want := sum(t, filepath.Join(mp, "data"))

			snap, err := s.Snapshot(ctx, ds, "cp1")
			if err != nil {
				t.Fatal(err)
			}
			if snap != ds+"@cp1" {
				t.Errorf("Snapshot = %q, want %q", snap, ds+"@cp1")
			}

			// change everything
			if err := writeRandom(filepath.Join(mp, "data"), tc.size/2, 2); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(mp, "keep")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mp, "new"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}

			// a clone of the snapshot sees the old state and is independent
			clone := s.Dataset("clone-" + tc.name)
			if err := s.Clone(ctx, snap, clone, map[string]string{"lxcri:clone": "1"}); err != nil {
				t.Fatal(err)
			}
			cmp := mustMountpoint(t, s, clone)
			if got := sum(t, filepath.Join(cmp, "data")); got != want {
				t.Errorf("clone: data changed")
			}
			if _, err := os.Stat(filepath.Join(cmp, "new")); !os.IsNotExist(err) {
				t.Errorf("clone has a file made after the snapshot: %v", err)
			}
			if err := os.WriteFile(filepath.Join(cmp, "keep"), []byte("clone"), 0o644); err != nil {
				t.Fatal(err)
			}

			start := time.Now()
			if err := s.Rollback(ctx, snap); err != nil {
				t.Fatal(err)
			}
			t.Logf("rollback of %d bytes: %v", tc.size, time.Since(start))
			if got := sum(t, filepath.Join(mp, "data")); got != want {
				t.Errorf("rollback did not restore data")
			}
			if b, err := os.ReadFile(filepath.Join(mp, "keep")); err != nil || string(b) != "v1" {
				t.Errorf("rollback: keep = %q, %v; want v1", b, err)
			}
			if _, err := os.Stat(filepath.Join(mp, "new")); !os.IsNotExist(err) {
				t.Errorf("rollback left a file made after the snapshot: %v", err)
			}

			snaps, err := s.ListSnapshots(ctx, ds)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(snaps, []string{snap}) {
				t.Errorf("ListSnapshots = %v, want [%s]", snaps, snap)
			}
			// the snapshot has a clone: destroying it is refused
			if err := s.Destroy(ctx, snap); !errdefs.IsFailedPrecondition(err) {
				t.Errorf("Destroy(snapshot with a clone) = %v, want FailedPrecondition", err)
			}
			for _, name := range []string{clone, ds} {
				if err := s.Destroy(ctx, name); err != nil {
					t.Fatal(err)
				}
				if ok, err := s.Exists(ctx, name); err != nil || ok {
					t.Errorf("Exists(%s) after Destroy = %v, %v", name, ok, err)
				}
			}
		})
	}
}

// testSendReceive: a file survives a send stream into a new dataset.
func testSendReceive(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	src := s.Dataset("src")
	if err := s.CreateDataset(ctx, src, nil); err != nil {
		t.Fatal(err)
	}
	mp := mustMountpoint(t, s, src)
	if err := writeRandom(filepath.Join(mp, "blob"), 3<<20, 7); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(mp, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "etc", "hostname"), []byte("lxcri\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := sum(t, filepath.Join(mp, "blob"))
	snap, err := s.Snapshot(ctx, src, "cp")
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	start := time.Now()
	if err := s.Send(ctx, snap, &stream); err != nil {
		t.Fatal(err)
	}
	t.Logf("send of 3 MiB: %d bytes in %v", stream.Len(), time.Since(start))

	for _, tc := range []struct {
		name     string
		target   string // what Receive is given
		dataset  string // the dataset it makes
		wantSnap string
	}{
		{"filesystem", s.Dataset("dst1"), s.Dataset("dst1"), s.Dataset("dst1") + "@cp"},
		{"snapshot name", s.Dataset("dst2") + "@restored", s.Dataset("dst2"), s.Dataset("dst2") + "@restored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			if err := s.Receive(ctx, tc.target, bytes.NewReader(stream.Bytes())); err != nil {
				t.Fatal(err)
			}
			t.Logf("receive: %v", time.Since(start))
			if _, err := s.Mountpoint(ctx, tc.dataset); !errdefs.IsFailedPrecondition(err) {
				t.Errorf("Mountpoint right after Receive = %v, want FailedPrecondition (not mounted)", err)
			}
			dmp, err := s.Mount(ctx, tc.dataset)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := s.Mount(ctx, tc.dataset); err != nil || again != dmp {
				t.Errorf("Mount of a mounted dataset = %q, %v; want %q", again, err, dmp)
			}
			if got := sum(t, filepath.Join(dmp, "blob")); got != want {
				t.Errorf("received blob differs")
			}
			if b, err := os.ReadFile(filepath.Join(dmp, "etc", "hostname")); err != nil || string(b) != "lxcri\n" {
				t.Errorf("received etc/hostname = %q, %v", b, err)
			}
			snaps, err := s.ListSnapshots(ctx, tc.dataset)
			if err != nil || !slices.Equal(snaps, []string{tc.wantSnap}) {
				t.Errorf("ListSnapshots = %v, %v; want [%s]", snaps, err, tc.wantSnap)
			}
			// receiving again into it is refused and leaves it alone
			err = s.Receive(ctx, tc.target, bytes.NewReader(stream.Bytes()))
			if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), tc.dataset) {
				t.Errorf("Receive into an existing dataset = %v, want AlreadyExists naming it", err)
			}
			if ok, _ := s.Exists(ctx, tc.wantSnap); !ok {
				t.Errorf("%s gone after the refused receive", tc.wantSnap)
			}
			if err := s.Destroy(ctx, tc.dataset); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("truncated stream", func(t *testing.T) {
		dst := s.Dataset("dst-truncated")
		err := s.Receive(ctx, dst, bytes.NewReader(stream.Bytes()[:stream.Len()/2]))
		if err == nil || !strings.Contains(err.Error(), dst) {
			t.Errorf("Receive(truncated) = %v, want an error naming %s", err, dst)
		}
		if ok, _ := s.Exists(ctx, dst); ok {
			t.Errorf("a failed receive left %s", dst)
		}
	})
	t.Run("failing writer", func(t *testing.T) {
		werr := errors.New("disk on fire")
		err := s.Send(ctx, snap, failAfter{n: 4096, err: werr})
		if !errors.Is(err, werr) || !strings.Contains(err.Error(), snap) {
			t.Errorf("Send to a failing writer = %v, want %v naming %s", err, werr, snap)
		}
	})
	if err := s.Destroy(ctx, src); err != nil {
		t.Fatal(err)
	}
}

type failAfter struct {
	n   int
	err error
}

func (f failAfter) Write(p []byte) (int, error) { return 0, f.err }

// testDestroyBusy: zfs-fuse says "dataset is busy" right after create and clone; Destroy
// retries. A dataset that stays busy (a file open in it) fails after BusyTimeout.
func testDestroyBusy(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	seed := s.Dataset("seed")
	if err := s.CreateDataset(ctx, seed, nil); err != nil {
		t.Fatal(err)
	}
	seedSnap, err := s.Snapshot(ctx, seed, "s")
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if err := s.Send(ctx, seedSnap, &stream); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(name string) error
	}{
		{"after create", func(n string) error { return s.CreateDataset(ctx, n, nil) }},
		{"after clone", func(n string) error { return s.Clone(ctx, seedSnap, n, nil) }},
		{"after receive", func(n string) error { return s.Receive(ctx, n, bytes.NewReader(stream.Bytes())) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			retried := 0
			for i := 0; i < 5; i++ {
				name := s.Dataset(fmt.Sprintf("busy%d", i))
				if err := tc.make(name); err != nil {
					t.Fatal(err)
				}
				before := countOf("zfs destroy")
				start := time.Now()
				if err := s.Destroy(ctx, name); err != nil {
					t.Fatalf("Destroy right %s: %v", tc.name, err)
				}
				n := countOf("zfs destroy") - before
				if n > 1 {
					retried++
				}
				t.Logf("destroy %s: %d attempt(s), %v", tc.name, n, time.Since(start))
			}
			t.Logf("%d of 5 destroys needed a retry", retried)
		})
	}

	t.Run("stays busy", func(t *testing.T) {
		outer := s
		s := &zfs.Store{Parent: s.Parent, BusyTimeout: 500 * time.Millisecond}
		ds := s.Dataset("held")
		if err := s.CreateDataset(ctx, ds, nil); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(mustMountpoint(t, s, ds), "open"))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = s.Destroy(ctx, ds)
		took := time.Since(start)
		f.Close()
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), ds) || !strings.Contains(err.Error(), "busy") {
			t.Errorf("Destroy(in use) = %v, want FailedPrecondition naming %s and busy", err, ds)
		}
		if took < 500*time.Millisecond || took > 10*time.Second {
			t.Errorf("Destroy(in use) gave up after %v, want about BusyTimeout (500ms)", took)
		}
		t.Logf("Destroy(in use) gave up after %v: %v", took, err)
		if err := outer.Destroy(ctx, ds); err != nil {
			t.Fatalf("Destroy once released: %v", err)
		}
	})
	if err := s.Destroy(ctx, seed); err != nil {
		t.Fatal(err)
	}
}

// testBaseRefcount: one base per image, shared by clones; the base goes with its last clone.
func testBaseRefcount(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	var populated atomic.Int32
	populate := func(dir string) error {
		populated.Add(1)
		if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "bin", "sh"), []byte("#!busybox\n"), 0o755)
	}
	key := "sha256:0123456789abcdef"
	base, err := s.BaseFor(ctx, key, populate)
	if err != nil {
		t.Fatal(err)
	}
	if want := s.BaseDataset(key) + "@" + zfs.BaseSnapshot; base != want {
		t.Errorf("BaseFor = %q, want %q", base, want)
	}
	if again, err := s.BaseFor(ctx, key, populate); err != nil || again != base {
		t.Errorf("BaseFor again = %q, %v", again, err)
	}
	if n := populated.Load(); n != 1 {
		t.Errorf("populate ran %d times, want 1", n)
	}

	ids := []string{"ct-a", "ct-b"}
	for _, id := range ids {
		mp, err := s.CloneForContainer(ctx, base, id)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(mp, "bin", "sh")); err != nil || string(b) != "#!busybox\n" {
			t.Errorf("clone %s: bin/sh = %q, %v", id, b, err)
		}
		if err := os.WriteFile(filepath.Join(mp, "id"), []byte(id), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CloneForContainer(ctx, base, ids[0]); !errdefs.IsAlreadyExists(err) {
		t.Errorf("CloneForContainer(existing id) = %v, want AlreadyExists", err)
	}

	steps := []struct {
		release  string
		wantBase bool
	}{
		{ids[0], true},
		{ids[1], false},
	}
	for _, st := range steps {
		if err := s.ReleaseContainer(ctx, st.release); err != nil {
			t.Fatalf("ReleaseContainer(%s): %v", st.release, err)
		}
		if ok, _ := s.Exists(ctx, s.ContainerDataset(st.release)); ok {
			t.Errorf("container %s still there", st.release)
		}
		ok, err := s.Exists(ctx, base)
		if err != nil || ok != st.wantBase {
			t.Errorf("after releasing %s: base exists = %v, %v; want %v", st.release, ok, err, st.wantBase)
		}
	}
	if err := s.ReleaseContainer(ctx, ids[0]); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), s.ContainerDataset(ids[0])) {
		t.Errorf("ReleaseContainer(released) = %v, want NotFound naming the dataset", err)
	}

	t.Run("waits for the populating caller", func(t *testing.T) {
		release := make(chan struct{})
		first := make(chan error, 1)
		started := make(chan struct{})
		go func() {
			_, err := s.BaseFor(ctx, "slow", func(dir string) error {
				close(started)
				<-release
				return populate(dir)
			})
			first <- err
		}()
		<-started
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := s.BaseFor(wctx, "slow", func(string) error { return errors.New("must not run") })
		if !errdefs.IsDeadlineExceeded(err) || !strings.Contains(err.Error(), s.BaseDataset("slow")) {
			t.Errorf("BaseFor while another populates = %v, want DeadlineExceeded naming the base", err)
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		snap, err := s.BaseFor(ctx, "slow", func(string) error { return errors.New("must not run") })
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Destroy(ctx, strings.TrimSuffix(snap, "@base")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("half-made by a process that is gone", func(t *testing.T) {
		// a base left by a process that died while populating it
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		stale := s.BaseDataset("stale")
		owner := fmt.Sprintf("%d:1", dead.Process.Pid)
		if err := s.CreateDataset(ctx, stale, map[string]string{"lxcri:populating": owner}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mustMountpoint(t, s, stale), "partial"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		n := populated.Load()
		snap, err := s.BaseFor(ctx, "stale", populate)
		if err != nil {
			t.Fatal(err)
		}
		if populated.Load() != n+1 {
			t.Errorf("the stale base was not populated again")
		}
		mp := mustMountpoint(t, s, stale)
		if _, err := os.Stat(filepath.Join(mp, "partial")); !os.IsNotExist(err) {
			t.Errorf("the stale base's files survived: %v", err)
		}
		if err := s.Destroy(ctx, strings.TrimSuffix(snap, "@base")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("prune", func(t *testing.T) {
		base, err := s.BaseFor(ctx, "orphan", populate)
		if err != nil {
			t.Fatal(err)
		}
		used, err := s.BaseFor(ctx, "used", populate)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CloneForContainer(ctx, used, "user"); err != nil {
			t.Fatal(err)
		}
		pruned, err := s.PruneBases(ctx)
		if err != nil || !slices.Equal(pruned, []string{s.BaseDataset("orphan")}) {
			t.Errorf("PruneBases = %v, %v; want [%s]", pruned, err, s.BaseDataset("orphan"))
		}
		if ok, _ := s.Exists(ctx, base); ok {
			t.Errorf("%s survived PruneBases", base)
		}
		if err := s.ReleaseContainer(ctx, "user"); err != nil {
			t.Fatal(err)
		}
	})
}

// testBaseRace: callers racing for the same base get the same snapshot, and the losers'
// datasets are gone.
func testBaseRace(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	const n = 4
	var populated atomic.Int32
	var wg sync.WaitGroup
	snaps := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snaps[i], errs[i] = s.BaseFor(ctx, "img", func(dir string) error {
				populated.Add(1)
				return os.WriteFile(filepath.Join(dir, "who"), []byte(fmt.Sprint(i)), 0o644)
			})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || snaps[i] != snaps[0] {
			t.Errorf("BaseFor #%d = %q, %v; want %q", i, snaps[i], errs[i], snaps[0])
		}
	}
	if p := populated.Load(); p != 1 {
		t.Errorf("populate ran %d times, want 1 (the others wait)", p)
	}
	if left := below(t, s.Parent); !slices.Equal(left, []string{s.BaseDataset("img"), snaps[0]}) {
		t.Errorf("after the race: %v, want only the base and its snapshot", left)
	}
	if _, err := s.CloneForContainer(ctx, snaps[0], "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
}

// testReleaseRace: the containers of one image released at the same moment all succeed,
// and the last of them takes the base along, whichever it is. Rounds of it, as the race
// is one of timing.
func testReleaseRace(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	rounds := releaseRaceRounds
	for round := range rounds {
		base, err := s.BaseFor(ctx, "img", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{"a", "b", "c"}
		for _, id := range ids {
			if _, err := s.CloneForContainer(ctx, base, id); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, len(ids))
		start := make(chan struct{})
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.ReleaseContainer(ctx, id)
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: ReleaseContainer(%s) = %v", round, ids[i], err)
			}
		}
		if left := below(t, s.Parent); len(left) > 0 {
			t.Fatalf("round %d: left after releasing every container: %v", round, left)
		}

		// The releases of a base itself, at the same moment: one destroys it, the
		// others find it gone, none fails.
		if base, err = s.BaseFor(ctx, "img", func(string) error { return nil }); err != nil {
			t.Fatal(err)
		}
		var destroyed atomic.Int32
		start = make(chan struct{})
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok, err := s.ReleaseBase(ctx, base)
				if ok {
					destroyed.Add(1)
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: release of the base #%d = %v", round, i, err)
			}
		}
		if n := destroyed.Load(); n != 1 {
			t.Errorf("round %d: %d releases destroyed the base, want 1", round, n)
		}
		if left := below(t, s.Parent); len(left) > 0 {
			t.Fatalf("round %d: left after releasing the base: %v", round, left)
		}
	}
}

// releaseRaceRounds is how many times testReleaseRace races.
const releaseRaceRounds = 20

// testErrors: every failure carries its errdefs sentinel and names the dataset.
func testErrors(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	existing := s.Dataset("exists")
	if err := s.CreateDataset(ctx, existing, nil); err != nil {
		t.Fatal(err)
	}
	existingSnap, err := s.Snapshot(ctx, existing, "s")
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if err := s.Send(ctx, existingSnap, &stream); err != nil {
		t.Fatal(err)
	}
	missing := s.Dataset("missing")
	missingSnap := missing + "@s"

	for _, tc := range []struct {
		name  string
		call  func() error
		is    func(error) bool
		names string
	}{
		{"snapshot of missing dataset", func() error { _, err := s.Snapshot(ctx, missing, "s"); return err }, errdefs.IsNotFound, missing},
		{"clone of missing snapshot", func() error { return s.Clone(ctx, missingSnap, s.Dataset("c"), nil) }, errdefs.IsNotFound, missingSnap},
		{"rollback to missing snapshot", func() error { return s.Rollback(ctx, missingSnap) }, errdefs.IsNotFound, missingSnap},
		{"send of missing snapshot", func() error { return s.Send(ctx, missingSnap, io.Discard) }, errdefs.IsNotFound, missingSnap},
		{"destroy missing dataset", func() error { return s.Destroy(ctx, missing) }, errdefs.IsNotFound, missing},
		{"destroy missing snapshot", func() error { return s.Destroy(ctx, missingSnap) }, errdefs.IsNotFound, missingSnap},
		{"list snapshots of missing", func() error { _, err := s.ListSnapshots(ctx, missing); return err }, errdefs.IsNotFound, missing},
		{"mountpoint of missing", func() error { _, err := s.Mountpoint(ctx, missing); return err }, errdefs.IsNotFound, missing},
		{"create below missing parent", func() error { return s.CreateDataset(ctx, missing+"/child", nil) }, errdefs.IsNotFound, missing + "/child"},
		{"clone for container from missing base", func() error { _, err := s.CloneForContainer(ctx, missingSnap, "x"); return err }, errdefs.IsNotFound, missingSnap},
		{"release missing container", func() error { return s.ReleaseContainer(ctx, "nope") }, errdefs.IsNotFound, s.ContainerDataset("nope")},
		{"ensure parent in missing pool", func() error { return (&zfs.Store{Parent: "nopool-lxcri/x"}).EnsureParent(ctx) }, errdefs.IsNotFound, "nopool-lxcri"},

		{"create existing", func() error { return s.CreateDataset(ctx, existing, nil) }, errdefs.IsAlreadyExists, existing},
		{"snapshot existing", func() error { _, err := s.Snapshot(ctx, existing, "s"); return err }, errdefs.IsAlreadyExists, existingSnap},
		{"clone onto existing", func() error { return s.Clone(ctx, existingSnap, existing, nil) }, errdefs.IsAlreadyExists, existing},
		{"receive onto existing", func() error { return s.Receive(ctx, existing, bytes.NewReader(stream.Bytes())) }, errdefs.IsAlreadyExists, existing},

		{"mountpoint none", func() error {
			return mountpointOf(ctx, s, s.Dataset("mp-none"), map[string]string{"mountpoint": "none"})
		}, errdefs.IsFailedPrecondition, s.Dataset("mp-none")},
		{"not mounted", func() error { return mountpointOf(ctx, s, s.Dataset("mp-off"), map[string]string{"canmount": "off"}) }, errdefs.IsFailedPrecondition, s.Dataset("mp-off")},
		{"rollback past a newer snapshot", func() error { return rollbackBlocked(ctx, s, existing) }, errdefs.IsFailedPrecondition, existing},
		{"outside the parent", func() error { return s.Destroy(ctx, pool) }, errdefs.IsInvalidArgument, pool},
		{"bad character", func() error { return s.CreateDataset(ctx, s.Dataset("a b"), nil) }, errdefs.IsInvalidArgument, "a b"},
		{"dataset for snapshot", func() error { return s.Rollback(ctx, existing) }, errdefs.IsInvalidArgument, existing},
		{"bad image key", func() error { _, err := s.BaseFor(ctx, "a/b", nil); return err }, errdefs.IsInvalidArgument, "a/b"},
		{"bad property", func() error { return s.CreateDataset(ctx, s.Dataset("p"), map[string]string{"nosuchprop": "1"}) }, errdefs.IsInvalidArgument, s.Dataset("p")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("no error")
			}
			if !tc.is(err) {
				t.Errorf("wrong kind: %v", err)
			}
			if !strings.Contains(err.Error(), tc.names) {
				t.Errorf("error does not name %s: %v", tc.names, err)
			}
			var ze *zfs.Error
			if !errors.As(err, &ze) {
				t.Errorf("not a *zfs.Error: %T", err)
			}
			t.Log(err)
		})
	}
	if left := below(t, s.Parent); !slices.Equal(left, []string{existing, existingSnap}) {
		t.Errorf("failed calls left datasets: %v", left)
	}
	if err := s.Destroy(ctx, existing); err != nil {
		t.Fatal(err)
	}
}

// mountpointOf creates ds with props, asks for its mountpoint and destroys it again.
func mountpointOf(ctx context.Context, s *zfs.Store, ds string, props map[string]string) error {
	if err := s.CreateDataset(ctx, ds, props); err != nil {
		return err
	}
	defer s.Destroy(ctx, ds) //nolint:errcheck
	_, err := s.Mountpoint(ctx, ds)
	return err
}

// rollbackBlocked makes a second snapshot and rolls back to the first one, which zfs
// refuses while the newer one exists; the newer snapshot is then destroyed again.
func rollbackBlocked(ctx context.Context, s *zfs.Store, ds string) error {
	newer, err := s.Snapshot(ctx, ds, "newer")
	if err != nil {
		return err
	}
	defer s.Destroy(ctx, newer) //nolint:errcheck
	return s.Rollback(ctx, ds+"@s")
}

// testContext: a context that ends stops the call, and leaves nothing behind.
func testContext(t *testing.T, pool string) {
	s := newStore(t, pool)
	ctx := context.Background()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.CreateDataset(canceled, s.Dataset("never"), nil); !errdefs.IsCanceled(err) {
		t.Errorf("CreateDataset(canceled) = %v, want Canceled", err)
	}

	src := s.Dataset("src")
	if err := s.CreateDataset(ctx, src, nil); err != nil {
		t.Fatal(err)
	}
	if err := writeRandom(filepath.Join(mustMountpoint(t, s, src), "blob"), 8<<20, 3); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(ctx, src, "s")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("send", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w := &cancelAfter{n: 1 << 20, cancel: cancel}
		start := time.Now()
		err := s.Send(ctx, snap, w)
		if !errdefs.IsCanceled(err) {
			t.Errorf("Send canceled midway = %v, want Canceled", err)
		}
		t.Logf("Send returned %v after %v and %d bytes", err, time.Since(start), w.written)
	})
	t.Run("receive", func(t *testing.T) {
		var stream bytes.Buffer
		if err := s.Send(ctx, snap, &stream); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		dst := s.Dataset("dst")
		r := &stallAfter{r: bytes.NewReader(stream.Bytes()), n: 1 << 20, cancel: cancel, stalled: make(chan struct{})}
		start := time.Now()
		err := s.Receive(rctx, dst, r)
		if !errdefs.IsCanceled(err) {
			t.Errorf("Receive canceled midway = %v, want Canceled", err)
		}
		// the reader is stuck in Read: Receive waits a grace period for it, then gives up
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("Receive took %v to give up on a stuck reader", took)
		}
		t.Logf("Receive returned %v after %v (reader stuck)", err, time.Since(start))
		close(r.stalled)
		// the clean-up runs once zfs receive has ended
		deadline := time.Now().Add(30 * time.Second)
		for {
			ok, err := s.Exists(ctx, dst)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s left after a canceled receive", dst)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, time.Nanosecond)
		defer cancel()
		time.Sleep(time.Millisecond)
		if _, err := s.ListSnapshots(ctx, src); !errdefs.IsDeadlineExceeded(err) || !strings.Contains(err.Error(), src) {
			t.Errorf("ListSnapshots(expired) = %v, want DeadlineExceeded naming %s", err, src)
		}
	})
	if err := s.Destroy(ctx, src); err != nil {
		t.Fatal(err)
	}
}

// cancelAfter cancels its context once n bytes went through.
type cancelAfter struct {
	n, written int
	cancel     func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.written += len(p)
	if c.written >= c.n {
		c.cancel()
	}
	return len(p), nil
}

// stallAfter reads n bytes of r, then cancels and blocks until released, like a network
// peer that went silent.
type stallAfter struct {
	r       io.Reader
	n       int
	cancel  func()
	stalled chan struct{}
}

func (s *stallAfter) Read(p []byte) (int, error) {
	if s.n <= 0 {
		s.cancel()
		<-s.stalled
		return 0, io.ErrUnexpectedEOF
	}
	if len(p) > s.n {
		p = p[:s.n]
	}
	n, err := s.r.Read(p)
	s.n -= n
	return n, err
}

// testSnapshotTiming logs snapshot, clone and rollback times at 1 MiB and 100 MiB:
// snapshots are O(1), whatever the data size.
func testSnapshotTiming(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	ds := s.Dataset("timing")
	if err := s.CreateDataset(ctx, ds, nil); err != nil {
		t.Fatal(err)
	}
	mp := mustMountpoint(t, s, ds)
	var written int64
	for i, size := range []int64{1 << 20, 100 << 20} {
		start := time.Now()
		if err := writeRandom(filepath.Join(mp, fmt.Sprintf("data%d", i)), size-written, uint64(i)); err != nil {
			t.Fatal(err)
		}
		writeTook := time.Since(start)
		written = size

		start = time.Now()
		snap, err := s.Snapshot(ctx, ds, fmt.Sprintf("s%d", i))
		if err != nil {
			t.Fatal(err)
		}
		snapTook := time.Since(start)

		// the same through the zfs command alone (go-zfs adds a listing of the snapshot)
		start = time.Now()
		raw := fmt.Sprintf("%s@raw%d", ds, i)
		if out, err := exec.Command("zfs", "snapshot", raw).CombinedOutput(); err != nil {
			t.Fatalf("zfs snapshot: %v: %s", err, out)
		}
		rawTook := time.Since(start)
		if err := s.Destroy(ctx, raw); err != nil {
			t.Fatal(err)
		}

		start = time.Now()
		clone := s.Dataset(fmt.Sprintf("timing-clone%d", i))
		if err := s.Clone(ctx, snap, clone, nil); err != nil {
			t.Fatal(err)
		}
		cloneTook := time.Since(start)

		if err := os.WriteFile(filepath.Join(mp, "scratch"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if err := s.Rollback(ctx, snap); err != nil {
			t.Fatal(err)
		}
		rollbackTook := time.Since(start)
		t.Logf("%3d MiB: write %v, Store.Snapshot %v (zfs snapshot alone %v), Clone %v, Rollback %v",
			size>>20, writeTook.Round(time.Millisecond), snapTook.Round(time.Millisecond),
			rawTook.Round(time.Millisecond), cloneTook.Round(time.Millisecond),
			rollbackTook.Round(time.Millisecond))
		if snapTook > 10*time.Second {
			t.Errorf("snapshot of %d MiB took %v", size>>20, snapTook)
		}
		if err := s.Destroy(ctx, clone); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Destroy(ctx, ds); err != nil {
		t.Fatal(err)
	}
}

// testFullPool: on a full 64 MiB pool every call that needs space fails with
// FailedPrecondition naming the dataset, and leaves nothing behind.
func testFullPool(t *testing.T) {
	pool, _ := zfstest.Pool(t, zfstest.WithSize(zfstest.MinSize))
	ctx := context.Background()
	s := newStore(t, pool)

	// a populate that fills the pool: the half-made base disappears
	base := s.BaseDataset("huge")
	_, err := s.BaseFor(ctx, "huge", func(dir string) error {
		return writeRandom(filepath.Join(dir, "fill"), 1<<30, 9)
	})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), base) || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("BaseFor(populate fills the pool) = %v, want FailedPrecondition, ENOSPC, naming %s", err, base)
	} else {
		t.Log(err)
	}
	if left := below(t, s.Parent); len(left) > 0 {
		t.Errorf("failed BaseFor left %v", left)
	}

	// a snapshot and a stream made while there is room, then a filler takes all space
	seed := s.Dataset("seed")
	if err := s.CreateDataset(ctx, seed, nil); err != nil {
		t.Fatal(err)
	}
	seedSnap, err := s.Snapshot(ctx, seed, "s")
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if err := s.Send(ctx, seedSnap, &stream); err != nil {
		t.Fatal(err)
	}
	fill := filepath.Join(mustMountpoint(t, s, seed), "fill")
	if err := writeRandom(fill, 1<<30, 10); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the pool: %v, want ENOSPC", err)
	}

	for _, tc := range []struct {
		name    string
		call    func() error
		dataset string // must not exist afterwards
	}{
		{"create", func() error { return s.CreateDataset(ctx, s.Dataset("new"), nil) }, s.Dataset("new")},
		{"snapshot", func() error { _, err := s.Snapshot(ctx, seed, "full"); return err }, seed + "@full"},
		{"clone", func() error { return s.Clone(ctx, seedSnap, s.Dataset("clone"), nil) }, s.Dataset("clone")},
		{"clone for container", func() error { _, err := s.CloneForContainer(ctx, seedSnap, "ct1"); return err }, s.ContainerDataset("ct1")},
		{"receive", func() error { return s.Receive(ctx, s.Dataset("recv"), bytes.NewReader(stream.Bytes())) }, s.Dataset("recv")},
		{"base", func() error {
			_, err := s.BaseFor(ctx, "img", func(string) error { return nil })
			return err
		}, s.BaseDataset("img")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil && tc.name == "snapshot" {
				// ZFS lets a snapshot, which needs only metadata, use the pool's reserved
				// (slop) space, so whether it fits on a "full" pool depends on how much of
				// that the filler's failed write left: success is ZFS's answer too.
				t.Log("the snapshot fit in the pool's reserved space")
				if err := s.Destroy(ctx, tc.dataset); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errdefs.IsFailedPrecondition(err) {
				t.Errorf("on a full pool: %v, want FailedPrecondition", err)
			}
			if err != nil && !strings.Contains(err.Error(), tc.dataset) && !strings.Contains(err.Error(), s.Parent+"/") {
				t.Errorf("error does not name the dataset: %v", err)
			}
			t.Log(err)
			if ok, _ := s.Exists(ctx, tc.dataset); ok {
				t.Errorf("%s left behind", tc.dataset)
			}
		})
	}
	if left := below(t, s.Parent); !slices.Equal(left, []string{seed, seedSnap}) {
		t.Errorf("calls on the full pool left %v", left)
	}
	if err := s.Destroy(ctx, seed); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSnapshot measures Store.Snapshot on datasets holding 1 MiB and 100 MiB.
func BenchmarkSnapshot(b *testing.B) {
	pool, _ := zfstest.Pool(b)
	ctx := context.Background()
	for _, size := range []int64{1 << 20, 100 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			s := &zfs.Store{Parent: pool + "/bench"}
			if err := s.EnsureParent(ctx); err != nil {
				b.Fatal(err)
			}
			ds := s.Dataset(fmt.Sprintf("d%d", size>>20))
			if ok, _ := s.Exists(ctx, ds); !ok {
				if err := s.CreateDataset(ctx, ds, nil); err != nil {
					b.Fatal(err)
				}
				mp, err := s.Mountpoint(ctx, ds)
				if err != nil {
					b.Fatal(err)
				}
				if err := writeRandom(filepath.Join(mp, "data"), size, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				snap, err := s.Snapshot(ctx, ds, fmt.Sprintf("b%d", i))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.Destroy(ctx, snap); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
		})
	}
	if err := (&zfs.Store{Parent: pool + "/bench"}).Destroy(ctx, pool+"/bench"); err != nil {
		b.Fatal(err)
	}
}
