package pvesim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// storage is one PVE storage of the node. Both kinds keep a CT's root disk as a directory
// (a "subvol"); they differ in what PVE's storage plugins would allow:
//   - "local", type dir: templates (vztmpl), ISO images, backups and CT disks; no CT
//     snapshots, as PVE's directory storage.
//   - "simpool", type btrfs: CT disks with snapshots and linked clones, as PVE's btrfs
//     storage; a snapshot is a full copy of the subvolume here.
type storage struct {
	id        string
	typ       string
	path      string
	content   []string
	snapshots bool

	mu sync.Mutex // serializes volume allocation
}

func (s *Server) initStorages() error {
	for _, st := range []*storage{
		{id: DefaultTemplateStorage, typ: "dir", content: []string{"backup", "iso", "rootdir", "vztmpl"}},
		{id: DefaultStorage, typ: "btrfs", content: []string{"images", "rootdir"}, snapshots: true},
	} {
		st.path = filepath.Join(s.cfg.Dir, "storage", st.id)
		for _, d := range []string{st.path, st.templateDir(), filepath.Join(st.path, "images")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("pvesim: storage %s: %w", st.id, err)
			}
		}
		s.storages[st.id] = st
	}
	return nil
}

func (st *storage) has(content string) bool {
	for _, c := range st.content {
		if c == content {
			return true
		}
	}
	return false
}

func (st *storage) templateDir() string { return filepath.Join(st.path, "template", "cache") }

// reSubvol is the name of a disk: subvol-VMID-disk-N (CT), vm-VMID-disk-N (VM) or
// base-VMID-disk-N (VM template).
var reSubvol = regexp.MustCompile(`^(?:subvol|vm|base)-([1-9][0-9]{2,8})-disk-([0-9]+)$`)

// volPath is the directory of a CT disk.
func (st *storage) volPath(volname string) (string, error) {
	m := reSubvol.FindStringSubmatch(volname)
	if m == nil {
		return "", fmt.Errorf("unable to parse volume name '%s'", volname)
	}
	return filepath.Join(st.path, "images", m[1], volname), nil
}

func (st *storage) snapPath(volname, snap string) (string, error) {
	p, err := st.volPath(volname)
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(p), ".snapshots", volname, snap), nil
}

// allocSubvol makes an empty CT disk for vmid and returns its volume name and directory.
func (st *storage) allocSubvol(vmid int) (string, string, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for n := 0; n < 1000; n++ {
		vol := fmt.Sprintf("subvol-%d-disk-%d", vmid, n)
		p, _ := st.volPath(vol)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", "", err
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", "", err
		}
		return vol, p, nil
	}
	return "", "", fmt.Errorf("unable to allocate a disk name for %d on storage '%s'", vmid, st.id)
}

// freeVol removes a CT disk and its snapshots.
func (st *storage) freeVol(volname string) error {
	p, err := st.volPath(volname)
	if err != nil {
		return err
	}
	snaps := filepath.Join(filepath.Dir(p), ".snapshots", volname)
	if err := os.RemoveAll(snaps); err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	// the per-VMID directory goes with its last disk
	dir := filepath.Dir(p)
	os.Remove(filepath.Join(dir, ".snapshots"))
	os.Remove(dir)
	return nil
}

// copyTree copies a directory tree with owners, modes, times, links and xattrs.
func copyTree(ctx context.Context, src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s exists already", dst)
	}
	cmd := exec.CommandContext(ctx, "cp", "-a", "--", src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dst)
		return fmt.Errorf("copy %s: %v: %s", filepath.Base(src), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (st *storage) snapshot(ctx context.Context, volname, snap string) error {
	if !st.snapshots {
		return fmt.Errorf("snapshot feature is not available")
	}
	p, err := st.volPath(volname)
	if err != nil {
		return err
	}
	sp, _ := st.snapPath(volname, snap)
	if err := os.MkdirAll(filepath.Dir(sp), 0o700); err != nil {
		return err
	}
	return copyTree(ctx, p, sp)
}

func (st *storage) rollback(ctx context.Context, volname, snap string) error {
	p, err := st.volPath(volname)
	if err != nil {
		return err
	}
	sp, _ := st.snapPath(volname, snap)
	if _, err := os.Stat(sp); err != nil {
		return fmt.Errorf("snapshot '%s' of volume '%s' does not exist", snap, volname)
	}
	old := p + ".rollback"
	os.RemoveAll(old)
	if err := os.Rename(p, old); err != nil {
		return err
	}
	if err := copyTree(ctx, sp, p); err != nil {
		os.Rename(old, p)
		return err
	}
	return os.RemoveAll(old)
}

func (st *storage) deleteSnapshot(volname, snap string) error {
	sp, err := st.snapPath(volname, snap)
	if err != nil {
		return err
	}
	return os.RemoveAll(sp)
}

// cloneVol copies a CT disk (or one of its snapshots) into a new disk for newid.
func (st *storage) cloneVol(ctx context.Context, from *storage, volname, snap string, newid int) (string, error) {
	src, err := from.volPath(volname)
	if err != nil {
		return "", err
	}
	if snap != "" {
		if src, err = from.snapPath(volname, snap); err != nil {
			return "", err
		}
	}
	vol, dst, err := st.allocSubvol(newid)
	if err != nil {
		return "", err
	}
	if err := os.Remove(dst); err != nil {
		return "", err
	}
	if err := copyTree(ctx, src, dst); err != nil {
		st.freeVol(vol)
		return "", err
	}
	return vol, nil
}

// contentEntry is one row of GET storage/{storage}/content.
type contentEntry struct {
	Volid   string `json:"volid"`
	Content string `json:"content"`
	Format  string `json:"format"`
	Size    int64  `json:"size"`
	Ctime   int64  `json:"ctime,omitempty"`
	VMID    int    `json:"vmid,omitempty"`
}

var reVztmpl = regexp.MustCompile(`(?i)^[^/]+\.(tar|tar\.(gz|xz|zst|bz2))$`)

func (st *storage) list(content string, vmid int, disks map[string]int) []contentEntry {
	var out []contentEntry
	if st.has("vztmpl") && (content == "" || content == "vztmpl") && vmid == 0 {
		ents, _ := os.ReadDir(st.templateDir())
		for _, e := range ents {
			m := reVztmpl.FindStringSubmatch(e.Name())
			if m == nil || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			format := map[string]string{"tar": "tar", "tar.gz": "tgz", "tar.xz": "txz", "tar.zst": "tzst", "tar.bz2": "tbz2"}[strings.ToLower(m[1])]
			out = append(out, contentEntry{Volid: st.id + ":vztmpl/" + e.Name(), Content: "vztmpl", Format: format, Size: fi.Size(), Ctime: fi.ModTime().Unix()})
		}
	}
	if st.has("rootdir") && (content == "" || content == "rootdir") {
		for vol, owner := range disks {
			if vmid != 0 && owner != vmid {
				continue
			}
			p, err := st.volPath(vol)
			if err != nil {
				continue
			}
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			out = append(out, contentEntry{Volid: st.id + ":" + vol, Content: "rootdir", Format: "subvol", Ctime: fi.ModTime().Unix(), VMID: owner})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Volid < out[j].Volid })
	return out
}

// templatePath resolves a vztmpl volume id (STORAGE:vztmpl/NAME) to its file.
func (s *Server) templatePath(volid string) (string, error) {
	sid, volname, ok := strings.Cut(volid, ":")
	if !ok || !reVolumeID.MatchString(volid) {
		return "", fmt.Errorf("unable to parse volume ID '%s'", volid)
	}
	st := s.storages[sid]
	if st == nil {
		return "", fmt.Errorf("storage '%s' does not exist", sid)
	}
	name, ok := strings.CutPrefix(volname, "vztmpl/")
	if !ok || !reVztmpl.MatchString(name) {
		return "", fmt.Errorf("unable to parse volume name '%s'", volname)
	}
	p := filepath.Join(st.templateDir(), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("volume '%s' does not exist", volid)
	}
	return p, nil
}

func unixNow() int64 { return time.Now().Unix() }

// disksOf lists the CT disks on the storage named for vmid.
func (st *storage) disksOf(vmid int) []string {
	ents, err := os.ReadDir(filepath.Join(st.path, "images", fmt.Sprint(vmid)))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && reSubvol.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}
