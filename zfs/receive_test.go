//go:build linux

package zfs_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/integration/zfstest"
	"github.com/lxcri/lxcri/zfs"
)

// zget returns a property's value and source, with the zfs on PATH.
func zget(t *testing.T, name, prop string) (string, string) {
	t.Helper()
	out, err := exec.Command("zfs", "get", "-H", "-o", "value,source", prop, name).CombinedOutput()
	if err != nil {
		t.Fatalf("zfs get %s %s: %v: %s", prop, name, err, out)
	}
	v, src, _ := strings.Cut(strings.TrimSpace(string(out)), "\t")
	return v, src
}

// zsend writes `zfs send <flags> snap` (the zfs on PATH) to a buffer.
func zsend(t *testing.T, snap string, flags ...string) []byte {
	t.Helper()
	var out, stderr bytes.Buffer
	cmd := exec.Command("zfs", append(append([]string{"send"}, flags...), snap)...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("zfs send %v %s: %v: %s", flags, snap, err, stderr.String())
	}
	return out.Bytes()
}

// testReceiveProperties: a stream that carries a mountpoint (zfs send -p) is received
// unmounted, with the mountpoint the Store's parent gives it and canmount=noauto; nothing
// is ever mounted where the stream said.
func testReceiveProperties(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	carried := filepath.Join(t.TempDir(), "carried")
	src := s.Dataset("src")
	if err := s.CreateDataset(ctx, src, map[string]string{"mountpoint": carried, "canmount": "on"}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(ctx, src, "s")
	if err != nil {
		t.Fatal(err)
	}
	stream := zsend(t, snap, "-p")
	// the mountpoint the stream carries is free again, as an attacker's target would be
	if err := s.Destroy(ctx, src); err != nil {
		t.Fatal(err)
	}

	dst := s.Dataset("recv")
	if err := s.Receive(ctx, dst+"@r", bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	defer s.Destroy(ctx, dst) //nolint:errcheck
	parentMP, _ := zget(t, s.Parent, "mountpoint")
	want := filepath.Join(parentMP, "recv")
	if v, _ := zget(t, dst, "mounted"); v != "no" {
		t.Errorf("received dataset mounted = %q, want no", v)
	}
	if v, src := zget(t, dst, "mountpoint"); v != want || !strings.HasPrefix(src, "inherited") {
		t.Errorf("received mountpoint = %q (%s), want %q inherited (the stream said %q)", v, src, want, carried)
	}
	if v, _ := zget(t, dst, "canmount"); v != zfs.ReceiveCanmount {
		t.Errorf("received canmount = %q, want %q", v, zfs.ReceiveCanmount)
	}
	if m := zfstest.Mounts(carried); len(m) > 0 {
		t.Errorf("mounted where the stream said: %v", m)
	}
	mp, err := s.Mount(ctx, dst)
	if err != nil || mp != want {
		t.Errorf("Mount = %q, %v; want %q", mp, err, want)
	}
	if m := zfstest.Mounts(carried); len(m) > 0 {
		t.Errorf("mounted where the stream said: %v", m)
	}
	if err := s.Destroy(ctx, dst); err != nil {
		t.Fatal(err)
	}
}

// testReceiveChecked: a zfs that accepts receive's -x and -o but ignores them (here: a
// wrapper that drops them) does not get its way: Receive sees the stream's mountpoint
// on the result, fails, and destroys what was received.
func testReceiveChecked(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	carried := filepath.Join(t.TempDir(), "carried")
	src := s.Dataset("src")
	if err := s.CreateDataset(ctx, src, map[string]string{"mountpoint": carried}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(ctx, src, "s")
	if err != nil {
		t.Fatal(err)
	}
	stream := zsend(t, snap, "-p")
	if err := s.Destroy(ctx, src); err != nil {
		t.Fatal(err)
	}

	next, err := exec.LookPath("zfs")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	wrapper := `#!/bin/sh
# receive without -x and -o (and their arguments); everything else unchanged
if [ "$1" = receive ]; then
  shift
  set -- receive "$@" --end
  while [ "$1" != --end ]; do
    case "$1" in
    -x | -o) shift 2 ;;
    *) set -- "$@" "$1"; shift ;;
    esac
  done
  shift
fi
exec ` + next + ` "$@"
`
	if err := os.WriteFile(filepath.Join(bin, "zfs"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	dst := s.Dataset("recv")
	err = s.Receive(ctx, dst+"@r", bytes.NewReader(stream))
	if !errdefs.IsInternal(err) || !strings.Contains(err.Error(), "mountpoint") {
		t.Errorf("Receive through a zfs ignoring -x = %v, want Internal naming mountpoint", err)
	}
	if ok, _ := s.Exists(ctx, dst); ok {
		t.Errorf("the refused receive left %s", dst)
	}
	if m := zfstest.Mounts(carried); len(m) > 0 {
		t.Errorf("still mounted where the stream said: %v", m)
	}
}

// testPlainStream: CheckPlainStream passes what Send writes, byte for byte, and refuses
// streams with properties or descendants, incremental streams and non-streams.
func testPlainStream(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	src := s.Dataset("src")
	if err := s.CreateDataset(ctx, src, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Destroy(ctx, src) //nolint:errcheck
	s1, err := s.Snapshot(ctx, src, "s1")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := s.Snapshot(ctx, src, "s2")
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if err := s.Send(ctx, s1, &plain); err != nil {
		t.Fatal(err)
	}
	swapped := bytes.Clone(plain.Bytes()[:312])
	for _, off := range []int{0, 4} { // the uint32 pair drr_type, drr_payloadlen
		binary.BigEndian.PutUint32(swapped[off:], binary.LittleEndian.Uint32(swapped[off:]))
	}
	for _, off := range []int{8, 16, 24, 40, 48} { // the uint64 fields
		binary.BigEndian.PutUint64(swapped[off:], binary.LittleEndian.Uint64(swapped[off:]))
	}
	for _, off := range []int{32, 36} {
		binary.BigEndian.PutUint32(swapped[off:], binary.LittleEndian.Uint32(swapped[off:]))
	}

	for _, tc := range []struct {
		name   string
		stream []byte
		msg    string // "" when accepted
	}{
		{"plain", plain.Bytes(), ""},
		{"big-endian head", swapped, ""},
		{"with properties", zsend(t, s1, "-p"), "with properties"},
		{"replication", zsend(t, s2, "-R"), "with properties or several datasets"},
		{"incremental", zsend(t, s2, "-i", s1), "incremental"},
		{"empty", nil, "shorter than"},
		{"garbage", bytes.Repeat([]byte("lxcri"), 100), "not a zfs send stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := zfs.CheckPlainStream(bytes.NewReader(tc.stream))
			if tc.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(r)
				if !bytes.Equal(got, tc.stream) {
					t.Errorf("the reader returned %d bytes, want the %d of the stream", len(got), len(tc.stream))
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("CheckPlainStream = %v, want InvalidArgument saying %q", err, tc.msg)
			}
		})
	}
	t.Run("failing reader", func(t *testing.T) {
		rerr := errors.New("disk on fire")
		if _, err := zfs.CheckPlainStream(io.MultiReader(bytes.NewReader(plain.Bytes()[:10]), failReader{rerr})); !errors.Is(err, rerr) {
			t.Errorf("CheckPlainStream(failing reader) = %v, want %v", err, rerr)
		}
	})
}

type failReader struct{ err error }

func (f failReader) Read([]byte) (int, error) { return 0, f.err }

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snapshot bool
		want     zfs.Name
		bad      bool
	}{
		{name: "tank/lxcri/ct-a--b@ckpt-1", snapshot: true, want: zfs.Name{Parent: "tank/lxcri", Leaf: "ct-a--b", Snapshot: "ckpt-1"}},
		{name: "tank/lxcri/ct-a--b", want: zfs.Name{Parent: "tank/lxcri", Leaf: "ct-a--b"}},
		{name: "tank", want: zfs.Name{Leaf: "tank"}},
		{name: "tank@s", snapshot: true, want: zfs.Name{Leaf: "tank", Snapshot: "s"}},
		{name: "tank/a", snapshot: true, bad: true},
		{name: "tank/a@s", bad: true},
		{name: "tank//a", bad: true},
		{name: "tank/../a", bad: true},
		{name: "/tank/a", bad: true},
		{name: "tank/a@s@t", snapshot: true, bad: true},
		{name: "tank/a b", bad: true},
		{name: "", bad: true},
		{name: "tank/" + strings.Repeat("a", 300), bad: true},
	} {
		got, err := zfs.ParseName(tc.name, tc.snapshot)
		if tc.bad {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("ParseName(%q, %v) = %+v, %v; want InvalidArgument", tc.name, tc.snapshot, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseName(%q, %v) = %+v, %v; want %+v", tc.name, tc.snapshot, got, err, tc.want)
		}
		if ds, _, _ := strings.Cut(tc.name, "@"); got.Dataset() != ds {
			t.Errorf("Dataset() = %q, want %q", got.Dataset(), ds)
		}
	}
}
