package proxmoxlxc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/api/types"
	"golang.org/x/sys/unix"
)

// templateCacheVersion changes whenever buildTemplate makes different bytes from the same
// root filesystem, so that no key made by an older shim names a template of another kind.
const templateCacheVersion = "1"

// cachedTemplate is what a template cache entry remembers: the template a root filesystem
// became and its root disk size.
type cachedTemplate struct {
	VolID string `json:"volid"`
	GiB   int    `json:"gib"`
}

// contentKey names the content of the root filesystem that mounts make, plus the CT init
// added to it, without reading the files, or says ok=false when the mounts do not pin the
// content down. Only an overlay qualifies: its lower directories are committed snapshots
// (a snapshotter hands out a new directory for every snapshot and never writes into a
// committed one), and its upper directory, the container's own layer, must still be empty
// (a task whose layer holds data, say one prepared from a checkpoint or with an image's
// volumes copied in, is hashed the long way). Each lower directory counts with its inode
// and change time beside its path, so that a snapshotter whose store was wiped and that
// hands out the same path again for another layer does not match an old entry; the CT
// init counts the same way, so that a new lxcri-pause makes new templates.
func contentKey(mounts []*types.Mount, pause string) (key string, ok bool) {
	if len(mounts) != 1 || mounts[0].Type != "overlay" {
		return "", false
	}
	m := mounts[0]
	h := sha256.New()
	fmt.Fprintf(h, "lxcri template %s\x00%s\x00%s\x00", templateCacheVersion, m.Type, m.Source)
	var lower []string
	opts := slices.Clone(m.Options)
	slices.Sort(opts)
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "workdir":
			continue // overlay's scratch space, no content
		case "upperdir":
			if empty, err := emptyDir(v); err != nil || !empty {
				return "", false
			}
			continue // empty: the same content whichever directory it is
		case "lowerdir":
			lower = strings.Split(v, ":")
		}
		fmt.Fprintf(h, "option %s\x00", o)
	}
	if len(lower) == 0 {
		return "", false
	}
	for _, d := range append(lower, pause) {
		if !filepath.IsAbs(d) {
			return "", false
		}
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return "", false
		}
		fmt.Fprintf(h, "%s %d %d %d.%d %d.%d %d\x00", d, st.Dev, st.Ino, st.Ctim.Sec, st.Ctim.Nsec, st.Mtim.Sec, st.Mtim.Nsec, st.Size)
	}
	return hex.EncodeToString(h.Sum(nil)), true
}

func emptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); errors.Is(err, io.EOF) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	return false, nil
}

// templateCache maps content keys to the templates made from that content, in files under
// dir: a cache on this host that spares building an archive only to learn its digest.
// An entry is a hint; the caller checks that its template is still in the storage.
type templateCache struct {
	dir string
}

func (c templateCache) get(key string) (cachedTemplate, bool) {
	var t cachedTemplate
	b, err := os.ReadFile(filepath.Join(c.dir, key))
	if err != nil || json.Unmarshal(b, &t) != nil || t.VolID == "" || t.GiB <= 0 {
		return cachedTemplate{}, false
	}
	return t, true
}

// put writes an entry whole (a temporary file renamed into place), so a reader sees the
// old entry, the new one or none.
func (c templateCache) put(key string, t cachedTemplate) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(c.dir, ".entry-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(c.dir, key))
}
