//go:build linux

package zfsroot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/zfs"
)

// Descriptor is what a checkpoint directory holds about the checkpoint.
type Descriptor struct {
	Version int `json:"version"`
	// Backend made the checkpointed container.
	Backend string `json:"backend"`
	// ContainerID and Namespace name the checkpointed container.
	ContainerID string `json:"container_id"`
	Namespace   string `json:"namespace"`
	// Dataset is the container's dataset, Snapshot the checkpoint's snapshot of it.
	Dataset  string `json:"dataset"`
	Snapshot string `json:"snapshot"`
	// ImageKey names the base the container was cloned from ("" for a restored one).
	ImageKey string `json:"image_key,omitempty"`
	// SpecDigest is the sha256 digest of the container's config.json.
	SpecDigest string `json:"spec_digest"`
	// Stream is the file name of the send stream in the checkpoint ("" unless portable).
	Stream string `json:"stream,omitempty"`
	// ProcessState says what happened to the processes; CRIU the host's `criu check`.
	ProcessState string    `json:"process_state"`
	CRIU         string    `json:"criu"`
	Created      time.Time `json:"created"`
}

// MaxDescriptorSize is the largest descriptor ReadDescriptor and ParseDescriptor take.
const MaxDescriptorSize = 64 << 10

const (
	// maxDescriptorSize bounds what ReadDescriptor reads: the descriptor comes from a
	// checkpoint image, which anyone allowed to import images can craft.
	maxDescriptorSize = MaxDescriptorSize
	// maxNoteLen bounds the free-text fields (process_state, criu).
	maxNoteLen = 4096
)

// descriptorField is one field of the descriptor file: its JSON name, whether it must be
// there, and how to decode and check it into a Descriptor.
type descriptorField struct {
	name     string
	required bool
	decode   func(d *Descriptor, raw json.RawMessage) error
}

// descriptorFields is the whole descriptor format (version 1); any other field is refused.
// The fields are decoded one by one, so that an error names the field it is about, and
// JSON's case-insensitive matching of field names (which would let "Snapshot" stand in
// for "snapshot") does not apply. The names (dataset, snapshot) are checked against
// each other and the namespace and container id in checkNames, once all are decoded.
var descriptorFields = []descriptorField{
	{"version", true, func(d *Descriptor, raw json.RawMessage) error {
		if err := json.Unmarshal(raw, &d.Version); err != nil {
			return errors.New("not an integer")
		}
		if d.Version != DescriptorVersion {
			return fmt.Errorf("version %d, this lxcri reads version %d", d.Version, DescriptorVersion)
		}
		return nil
	}},
	{"backend", true, decodeIdentifier(func(d *Descriptor) *string { return &d.Backend })},
	{"container_id", true, decodeIdentifier(func(d *Descriptor) *string { return &d.ContainerID })},
	{"namespace", true, decodeIdentifier(func(d *Descriptor) *string { return &d.Namespace })},
	{"dataset", true, decodeString(func(d *Descriptor) *string { return &d.Dataset }, func(s string) error {
		_, err := zfs.ParseName(s, false)
		return err
	})},
	{"snapshot", true, decodeString(func(d *Descriptor) *string { return &d.Snapshot }, func(s string) error {
		_, err := zfs.ParseName(s, true)
		return err
	})},
	{"image_key", false, decodeString(func(d *Descriptor) *string { return &d.ImageKey }, func(s string) error {
		if s != "" && !isLowerHex(s, imageKeyLen) {
			return fmt.Errorf("%q is not an image key (%d lowercase hex digits)", s, imageKeyLen)
		}
		return nil
	})},
	{"spec_digest", true, decodeString(func(d *Descriptor) *string { return &d.SpecDigest }, func(s string) error {
		if h, ok := strings.CutPrefix(s, "sha256:"); !ok || !isLowerHex(h, 64) {
			return fmt.Errorf("%q is not a sha256 digest (sha256:<64 lowercase hex digits>)", s)
		}
		return nil
	})},
	{"stream", false, decodeString(func(d *Descriptor) *string { return &d.Stream }, func(s string) error {
		if s != "" && s != StreamFile {
			return fmt.Errorf("%q: a checkpoint's stream is %s or none", s, StreamFile)
		}
		return nil
	})},
	{"process_state", true, decodeString(func(d *Descriptor) *string { return &d.ProcessState }, checkNote)},
	{"criu", true, decodeString(func(d *Descriptor) *string { return &d.CRIU }, checkNote)},
	{"created", true, func(d *Descriptor, raw json.RawMessage) error {
		if err := json.Unmarshal(raw, &d.Created); err != nil || d.Created.IsZero() {
			return errors.New("not a time (RFC 3339)")
		}
		return nil
	}},
}

// imageKeyLen is the length of the image keys imageKey makes.
const imageKeyLen = 32

func decodeString(field func(*Descriptor) *string, check func(string) error) func(*Descriptor, json.RawMessage) error {
	return func(d *Descriptor, raw json.RawMessage) error {
		p := field(d)
		if err := json.Unmarshal(raw, p); err != nil {
			return errors.New("not a string")
		}
		return check(*p)
	}
}

func decodeIdentifier(field func(*Descriptor) *string) func(*Descriptor, json.RawMessage) error {
	return decodeString(field, identifiers.Validate)
}

func checkNote(s string) error {
	if len(s) > maxNoteLen {
		return fmt.Errorf("longer than %d bytes", maxNoteLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("not UTF-8")
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return fmt.Errorf("control character %q", s[i:i+1])
	}
	return nil
}

// asNote makes s fit checkNote: control characters become blanks, and it is cut to
// maxNoteLen bytes (at a character boundary).
func asNote(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	for len(s) > maxNoteLen {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// fieldError is the InvalidArgument for descriptor field name (quoted when it is not one
// of ours: it may be anything).
func fieldError(p, name string, err error) error {
	if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_") != "" {
		name = strconv.Quote(name)
	}
	return fmt.Errorf("checkpoint descriptor %s: descriptor.%s: %s: %w", p, name, strings.TrimSuffix(err.Error(), ": "+errdefs.ErrInvalidArgument.Error()), errdefs.ErrInvalidArgument)
}

// ReadDescriptor reads the descriptor of checkpoint directory dir and checks every field
// of it (see descriptorFields and checkNames); a bad one is InvalidArgument naming the
// field (descriptor.snapshot, ...). A missing descriptor is NotFound.
func ReadDescriptor(dir string) (*Descriptor, error) {
	p := filepath.Join(dir, DescriptorFile)
	b, err := readRegular(p, maxDescriptorSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("checkpoint %s has no %s: it was not made by lxcri with [zfs] configured: %w", dir, DescriptorFile, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint descriptor: %w", err)
	}
	return ParseDescriptor(p, b)
}

// ParseDescriptor checks and decodes the descriptor b, read from p (which errors name), as
// ReadDescriptor does.
func ParseDescriptor(p string, b []byte) (*Descriptor, error) {
	if len(b) > maxDescriptorSize {
		return nil, fmt.Errorf("checkpoint descriptor %s is larger than %d bytes: %w", p, maxDescriptorSize, errdefs.ErrInvalidArgument)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		if err == nil {
			err = errors.New("not a JSON object")
		}
		return nil, fmt.Errorf("checkpoint descriptor %s is corrupt: %v: %w", p, err, errdefs.ErrInvalidArgument)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("checkpoint descriptor %s is corrupt: data after its JSON object: %w", p, errdefs.ErrInvalidArgument)
	}
	var unknown []string
	for k := range raw {
		if !slices.ContainsFunc(descriptorFields, func(f descriptorField) bool { return f.name == k }) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fieldError(p, unknown[0], errors.New("unknown field"))
	}
	d := &Descriptor{}
	// version first: a descriptor of another version is judged by that alone
	for _, f := range descriptorFields {
		v, ok := raw[f.name]
		switch {
		case !ok && f.required:
			return nil, fieldError(p, f.name, errors.New("missing"))
		case !ok:
			continue
		case bytes.Equal(bytes.TrimSpace(v), []byte("null")):
			return nil, fieldError(p, f.name, errors.New("null"))
		}
		if err := f.decode(d, v); err != nil {
			return nil, fieldError(p, f.name, err)
		}
	}
	if name, err := checkNames(d); err != nil {
		return nil, fieldError(p, name, err)
	}
	return d, nil
}

// checkNames checks that the descriptor's dataset is the dataset of its container (the
// last component is ct-<namespace>--<container_id>, below any parent: the checkpoint may
// come from a host with another [zfs] dataset) and its snapshot the checkpoint's own
// (<same parent>/ckpt-<namespace>--<container_id>--<stamp>@ckpt-<stamp>) or, as lxcri
// wrote it before checkpoints had datasets of their own, a checkpoint snapshot of that
// dataset. It returns the field at fault. Whether the snapshot may be used here is
// Restore's decision (cloneSource).
func checkNames(d *Descriptor) (string, error) {
	ds, err := zfs.ParseName(d.Dataset, false)
	if err != nil {
		return "dataset", err
	}
	key, err := containerKey(d.Namespace, d.ContainerID)
	if err != nil {
		return "namespace", err
	}
	if want := zfs.ContainerLeaf(key); ds.Parent == "" || ds.Leaf != want {
		return "dataset", fmt.Errorf("%q is not the dataset of container %s/%s (<parent>/%s)", d.Dataset, d.Namespace, d.ContainerID, want)
	}
	sn, err := zfs.ParseName(d.Snapshot, true)
	if err != nil {
		return "snapshot", err
	}
	if sn.Dataset() == d.Dataset { // as lxcri wrote it before
		if !strings.HasPrefix(sn.Snapshot, SnapshotPrefix) {
			return "snapshot", fmt.Errorf("%q is not a checkpoint snapshot (@%s...)", d.Snapshot, SnapshotPrefix)
		}
		return "", nil
	}
	id, stamp, ok := zfs.ParseCheckpointLeaf(sn.Leaf)
	if sn.Parent != ds.Parent || !ok || id != key || sn.Snapshot != SnapshotPrefix+stamp {
		return "snapshot", fmt.Errorf("%q is not a checkpoint of descriptor.dataset %q (%s/%s@%s)", d.Snapshot, d.Dataset,
			ds.Parent, zfs.CheckpointLeaf(key, "<stamp>"), SnapshotPrefix+"<stamp>")
	}
	return "", nil
}

// readRegular reads the regular file p, not following a symbolic link (a checkpoint
// image may hold one pointing anywhere on the host), and refuses more than max bytes.
func readRegular(p string, max int64) ([]byte, error) {
	f, err := openRegular(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", p, max, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// openRegular opens p for reading when it is a regular file, not through a symbolic link
// and without blocking on a FIFO.
func openRegular(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s is a symbolic link: %w", p, errdefs.ErrInvalidArgument)
		}
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (%v): %w", p, st.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
