package pvesim

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/lxc/go-lxc"
)

// This file serves /nodes/{node}/lxc/{vmid}/snapshot: list, create, get, delete,
// rollback, as pve-container and PVE::AbstractConfig do. Snapshots need a storage with
// the snapshot feature; on "local" the task fails "snapshot feature is not available".

func (s *Server) routesLXCSnapshot() {
	s.route("GET", "/nodes/{node}/lxc/{vmid}/snapshot", s.snapList)
	s.route("POST", "/nodes/{node}/lxc/{vmid}/snapshot", s.snapCreate)
	s.route("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", s.snapIndex)
	s.route("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", s.snapDelete)
	s.route("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback", s.snapRollback)
}

func (s *Server) snapList(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	running := 0
	if s.running(c) {
		running = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for name, sn := range c.snapshots {
		item := map[string]any{"name": name, "snaptime": sn.snaptime, "description": sn.description}
		if sn.parent != "" {
			item["parent"] = sn.parent
		}
		out = append(out, item)
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["snaptime"].(int64) < out[j]["snaptime"].(int64) })
	cur := map[string]any{"name": "current", "digest": confDigest(c.conf, c.lxc), "running": running, "description": "You are here!"}
	if c.parent != "" {
		cur["parent"] = c.parent
	}
	return append(out, cur), nil
}

func (s *Server) snapIndex(r *request) (any, error) {
	c, err := s.lookupCT(r)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	_, ok := c.snapshots[r.str("snapname")]
	s.mu.Unlock()
	if !ok {
		return nil, errorf(http.StatusInternalServerError, "snapshot '%s' does not exist", r.str("snapname"))
	}
	return []map[string]string{{"rel": "child", "href": "rollback"}, {"rel": "child", "href": "config"}}, nil
}

func (s *Server) snapCreate(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	name := r.str("snapname")
	if name == "current" || name == "vzdump" {
		return nil, errorf(http.StatusInternalServerError, "unable to use snapshot name '%s' (reserved name)", name)
	}
	desc := r.str("description")
	return s.startTask(r, "vzsnapshot", strconv.Itoa(c.vmid), func(ctx context.Context, t *task) error {
		c.op.Lock()
		defer c.op.Unlock()
		if err := s.checkLock(c); err != nil {
			return err
		}
		s.mu.Lock()
		_, used := c.snapshots[name]
		conf := copyConf(c.conf)
		s.mu.Unlock()
		if used {
			return fmt.Errorf("snapshot name '%s' already used", name)
		}
		st, vol, err := s.rootfsVolume(conf)
		if err != nil {
			return err
		}
		if !st.snapshots {
			return fmt.Errorf("snapshot feature is not available")
		}
		s.ctSet(c, "lock", "snapshot")
		defer s.ctSet(c, "lock", "")
		// a running CT is frozen while its disk is copied, as PVE freezes it for the
		// storage snapshot
		if state, _ := s.ctState(c.vmid); state == "running" {
			if lc, err := s.lxcContainer(c.vmid); err == nil {
				defer lxc.Release(lc)
				if lc.Freeze() == nil {
					defer lc.Unfreeze()
				}
			}
		}
		if err := st.snapshot(ctx, vol, name); err != nil {
			return err
		}
		s.mu.Lock()
		snapConf := copyConf(c.conf)
		delete(snapConf, "lock")
		c.snapshots[name] = &ctSnapshot{
			conf: snapConf, lxc: append([][2]string(nil), c.lxc...), description: desc,
			snaptime: time.Now().Unix(), parent: c.parent,
		}
		c.parent = name
		s.mu.Unlock()
		t.logf("snapshot '%s' of CT %d created", name, c.vmid)
		return nil
	}), nil
}

func (s *Server) snapDelete(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	name := r.str("snapname")
	force := r.boolOr("force", false)
	return s.startTask(r, "vzdelsnapshot", strconv.Itoa(c.vmid), func(ctx context.Context, t *task) error {
		c.op.Lock()
		defer c.op.Unlock()
		if !force {
			if err := s.checkLock(c); err != nil {
				return err
			}
		}
		s.mu.Lock()
		sn := c.snapshots[name]
		s.mu.Unlock()
		if sn == nil {
			return fmt.Errorf("snapshot '%s' does not exist", name)
		}
		s.ctSet(c, "lock", "snapshot-delete")
		defer s.ctSet(c, "lock", "")
		st, vol, err := s.rootfsVolume(sn.conf)
		if err == nil {
			err = st.deleteSnapshot(vol, name)
		}
		if err != nil && !force {
			return err
		}
		s.mu.Lock()
		delete(c.snapshots, name)
		// children of the deleted snapshot now descend from its parent
		for _, other := range c.snapshots {
			if other.parent == name {
				other.parent = sn.parent
			}
		}
		if c.parent == name {
			c.parent = sn.parent
		}
		s.mu.Unlock()
		return nil
	}), nil
}

func (s *Server) snapRollback(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	name := r.str("snapname")
	start := r.boolOr("start", false)
	return s.startTask(r, "vzrollback", strconv.Itoa(c.vmid), func(ctx context.Context, t *task) error {
		c.op.Lock()
		defer c.op.Unlock()
		if err := s.checkLock(c); err != nil {
			return err
		}
		s.mu.Lock()
		sn := c.snapshots[name]
		s.mu.Unlock()
		if sn == nil {
			return fmt.Errorf("snapshot '%s' does not exist", name)
		}
		st, vol, err := s.rootfsVolume(sn.conf)
		if err != nil {
			return err
		}
		s.ctSet(c, "lock", "rollback")
		if s.running(c) {
			t.logf("stopping CT %d for the rollback", c.vmid)
			if err := s.stopLXC(ctx, c.vmid, 0, true); err != nil {
				return err
			}
		}
		if err := st.rollback(ctx, vol, name); err != nil {
			return err
		}
		s.mu.Lock()
		c.conf = copyConf(sn.conf)
		c.lxc = append([][2]string(nil), sn.lxc...)
		c.parent = name
		s.mu.Unlock()
		if start {
			return s.startLXC(ctx, t, c)
		}
		return nil
	}), nil
}
