package pvesim

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file serves /nodes/{node}/qemu/{vmid}/snapshot: list, create (with vmstate),
// delete, rollback. Disks are snapshotted as CT disks are (a copy on "simpool"). The
// memory of a vmstate snapshot is the stand-in guest itself: the stand-in cannot copy a
// running process tree, so the snapshot keeps the frozen guest, the VM is left stopped,
// and a rollback resumes that very guest, once (README.md).

func (s *Server) routesQemuSnapshot() {
	s.route("GET", "/nodes/{node}/qemu/{vmid}/snapshot", s.qemuSnapList)
	s.route("POST", "/nodes/{node}/qemu/{vmid}/snapshot", s.qemuSnapCreate)
	s.route("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", s.qemuSnapIndex)
	s.route("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", s.qemuSnapDelete)
	s.route("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback", s.qemuSnapRollback)
}

func (s *Server) qemuSnapList(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	running := 0
	if s.vmRunning(v) {
		running = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for name, sn := range v.snapshots {
		item := map[string]any{"name": name, "snaptime": sn.snaptime, "description": sn.description}
		if sn.parent != "" {
			item["parent"] = sn.parent
		}
		if sn.vmstate {
			item["vmstate"] = 1
		}
		out = append(out, item)
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["snaptime"].(int64) < out[j]["snaptime"].(int64) })
	cur := map[string]any{"name": "current", "digest": confDigest(v.conf, nil), "running": running, "description": "You are here!"}
	if v.parent != "" {
		cur["parent"] = v.parent
	}
	return append(out, cur), nil
}

func (s *Server) qemuSnapIndex(r *request) (any, error) {
	v, err := s.lookupVM(r)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	_, ok := v.snapshots[r.str("snapname")]
	s.mu.Unlock()
	if !ok {
		return nil, errorf(http.StatusInternalServerError, "snapshot '%s' does not exist", r.str("snapname"))
	}
	return []map[string]string{{"cmd": "rollback"}, {"cmd": "config"}}, nil
}

// vmVolumes resolves a config's disks to (storage, volume name) pairs, boot disk first.
func (s *Server) vmVolumes(conf map[string]string) ([]*storage, []string, error) {
	disks := s.vmDisks(conf)
	var sts []*storage
	var vols []string
	for _, k := range sortedKeys(disks) {
		sid, vol, _ := strings.Cut(disks[k], ":")
		st := s.storages[sid]
		if st == nil {
			return nil, nil, fmt.Errorf("storage '%s' does not exist", sid)
		}
		sts, vols = append(sts, st), append(vols, vol)
	}
	return sts, vols, nil
}

func (s *Server) qemuSnapCreate(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	name := r.str("snapname")
	if name == "current" || name == "vzdump" {
		return nil, errorf(http.StatusInternalServerError, "unable to use snapshot name '%s' (reserved name)", name)
	}
	desc := r.str("description")
	withState := r.boolOr("vmstate", false)
	return s.startTask(r, "qmsnapshot", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		v.op.Lock()
		defer v.op.Unlock()
		if err := s.vmCheckLock(v); err != nil {
			return err
		}
		s.mu.Lock()
		_, used := v.snapshots[name]
		conf := copyConf(v.conf)
		s.mu.Unlock()
		if used {
			return fmt.Errorf("snapshot name '%s' already used", name)
		}
		sts, vols, err := s.vmVolumes(conf)
		if err != nil {
			return err
		}
		for _, st := range sts {
			if !st.snapshots {
				return fmt.Errorf("snapshot feature is not available")
			}
		}
		s.vmSet(v, "lock", "snapshot")
		defer s.vmSet(v, "lock", "")
		g := s.vmGuest(v)
		var held *guest
		if g != nil {
			wasFrozen := false
			if st, _ := g.state(); st == "frozen" {
				wasFrozen = true
			} else if err := g.freeze(); err != nil {
				return fmt.Errorf("freezing the guest: %v", err)
			}
			if withState {
				t.logf("saving VM state and RAM (pvesim: the snapshot keeps the frozen guest)")
				if err := s.snapshotDisksKeepingGuest(ctx, sts, vols, name); err != nil {
					if !wasFrozen {
						g.thaw()
					}
					return err
				}
				held = g
			} else {
				err := s.snapshotDisks(ctx, sts, vols, name)
				if !wasFrozen {
					g.thaw()
				}
				if err != nil {
					return err
				}
			}
		} else if err := s.snapshotDisks(ctx, sts, vols, name); err != nil {
			return err
		}
		s.mu.Lock()
		snapConf := copyConf(v.conf)
		delete(snapConf, "lock")
		v.snapshots[name] = &vmSnapshot{
			conf: snapConf, description: desc, snaptime: time.Now().Unix(), parent: v.parent,
			vmstate: held != nil, mem: held,
		}
		v.parent = name
		if held != nil && v.guest == held {
			v.guest = nil
		}
		s.mu.Unlock()
		if held != nil {
			t.logf("VM %d: the snapshot holds the guest; the VM is stopped (pvesim stand-in)", v.vmid)
		}
		return nil
	}), nil
}

func (s *Server) snapshotDisks(ctx context.Context, sts []*storage, vols []string, name string) error {
	for i, st := range sts {
		if err := st.snapshot(ctx, vols[i], name); err != nil {
			for j := 0; j < i; j++ {
				sts[j].deleteSnapshot(vols[j], name)
			}
			return err
		}
	}
	return nil
}

// snapshotDisksKeepingGuest moves each disk directory to the snapshot, where the frozen
// guest keeps using it (its root mount follows the directory), and gives the VM a copy as
// its current disk.
func (s *Server) snapshotDisksKeepingGuest(ctx context.Context, sts []*storage, vols []string, name string) error {
	for i, st := range sts {
		live, err := st.volPath(vols[i])
		if err != nil {
			return err
		}
		sp, _ := st.snapPath(vols[i], name)
		if err := os.MkdirAll(filepath.Dir(sp), 0o700); err != nil {
			return err
		}
		if err := os.Rename(live, sp); err != nil {
			return err
		}
		if err := copyTree(ctx, sp, live); err != nil {
			os.Rename(sp, live)
			return err
		}
	}
	return nil
}

func (s *Server) qemuSnapDelete(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	name := r.str("snapname")
	force := r.boolOr("force", false)
	return s.startTask(r, "qmdelsnapshot", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		v.op.Lock()
		defer v.op.Unlock()
		if !force {
			if err := s.vmCheckLock(v); err != nil {
				return err
			}
		}
		s.mu.Lock()
		sn := v.snapshots[name]
		s.mu.Unlock()
		if sn == nil {
			return fmt.Errorf("snapshot '%s' does not exist", name)
		}
		s.vmSet(v, "lock", "snapshot-delete")
		defer s.vmSet(v, "lock", "")
		if sn.mem != nil {
			if err := sn.mem.destroy(); err != nil && !force {
				return err
			}
			sn.mem = nil
		}
		sts, vols, err := s.vmVolumes(sn.conf)
		if err == nil {
			for i, st := range sts {
				if e := st.deleteSnapshot(vols[i], name); e != nil && err == nil {
					err = e
				}
			}
		}
		if err != nil && !force {
			return err
		}
		s.mu.Lock()
		delete(v.snapshots, name)
		for _, other := range v.snapshots {
			if other.parent == name {
				other.parent = sn.parent
			}
		}
		if v.parent == name {
			v.parent = sn.parent
		}
		s.mu.Unlock()
		return nil
	}), nil
}

func (s *Server) qemuSnapRollback(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	name := r.str("snapname")
	start := r.boolOr("start", false)
	return s.startTask(r, "qmrollback", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		v.op.Lock()
		defer v.op.Unlock()
		if err := s.vmCheckLock(v); err != nil {
			return err
		}
		s.mu.Lock()
		sn := v.snapshots[name]
		s.mu.Unlock()
		if sn == nil {
			return fmt.Errorf("snapshot '%s' does not exist", name)
		}
		if sn.vmstate && sn.mem == nil {
			return fmt.Errorf("snapshot '%s': its saved RAM was resumed by an earlier rollback; pvesim's stand-in guest can resume a vmstate snapshot only once", name)
		}
		sts, vols, err := s.vmVolumes(sn.conf)
		if err != nil {
			return err
		}
		s.vmSet(v, "lock", "rollback")
		defer s.vmSet(v, "lock", "")
		if s.vmRunning(v) {
			t.logf("stopping VM %d for the rollback", v.vmid)
		}
		if err := s.stopVM(v, 0, true); err != nil {
			return err
		}
		held := sn.mem
		for i, st := range sts {
			if held != nil {
				err = s.rollbackDiskToGuest(ctx, st, vols[i], name)
			} else {
				err = st.rollback(ctx, vols[i], name)
			}
			if err != nil {
				return err
			}
		}
		s.mu.Lock()
		v.conf = copyConf(sn.conf)
		v.conf["lock"] = "rollback"
		v.parent = name
		if held != nil {
			sn.mem = nil
			v.guest = held
		}
		s.mu.Unlock()
		if held != nil {
			t.logf("resuming the guest the snapshot saved")
			return held.thaw()
		}
		if start {
			g, err := s.startGuest(ctx, t, v)
			if err != nil {
				return err
			}
			s.mu.Lock()
			v.guest = g
			s.mu.Unlock()
		}
		return nil
	}), nil
}

// rollbackDiskToGuest gives the VM back the disk directory the held guest uses, and the
// snapshot a copy of it, so the snapshot still has its disk state afterwards.
func (s *Server) rollbackDiskToGuest(ctx context.Context, st *storage, vol, name string) error {
	live, err := st.volPath(vol)
	if err != nil {
		return err
	}
	sp, _ := st.snapPath(vol, name)
	if err := os.RemoveAll(live); err != nil {
		return err
	}
	if err := os.Rename(sp, live); err != nil {
		return err
	}
	return copyTree(ctx, live, sp)
}
