package pvesim

import (
	"context"
	"net/http"
	"strconv"
	"strings"
)

// lxcDelete is DELETE /nodes/{node}/lxc/{vmid}: a running CT is refused at once unless
// force is set, in which case the task stops it first; the task removes its disks (with
// destroy-unreferenced-disks, any other disk of the VMID too) and its config.
func (s *Server) lxcDelete(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	early := func() error {
		if s.ctGet(c, "protection") == "1" {
			return errorf(http.StatusInternalServerError, "can't remove CT %d - protection mode enabled", c.vmid)
		}
		return s.checkLock(c)
	}
	if err := early(); err != nil {
		return nil, err
	}
	force := r.boolOr("force", false)
	if !force && s.running(c) {
		return nil, errorf(http.StatusInternalServerError, "unable to destroy CT %d - container is running", c.vmid)
	}
	unreferenced := r.boolOr("destroy-unreferenced-disks", true)
	purge := r.boolOr("purge", false)
	return s.startTask(r, "vzdestroy", strconv.Itoa(c.vmid), func(ctx context.Context, t *task) error {
		c.op.Lock()
		defer c.op.Unlock()
		if err := early(); err != nil {
			return err
		}
		if s.running(c) {
			if !force {
				return errorf(http.StatusInternalServerError, "unable to destroy CT %d - container is running", c.vmid)
			}
			t.warn("forced to stop CT %d before destroying!", c.vmid)
		}
		if err := s.destroyCT(ctx, c, t); err != nil {
			return err
		}
		if unreferenced {
			s.freeUnreferenced(c.vmid)
		}
		if purge {
			t.logf("purging CT %d from related configurations..", c.vmid)
		}
		return nil
	}), nil
}

// destroyCT stops a CT, frees its disks and removes it. t may be nil (server shutdown).
func (s *Server) destroyCT(ctx context.Context, c *ct, t *task) error {
	if err := s.stopLXC(ctx, c.vmid, 0, true); err != nil {
		return err
	}
	s.mu.Lock()
	conf := copyConf(c.conf)
	s.mu.Unlock()
	if conf["rootfs"] != "" {
		st, vol, err := s.rootfsVolume(conf)
		if err == nil {
			if err := st.freeVol(vol); err != nil {
				return err
			}
		}
	}
	for k, v := range conf {
		if strings.HasPrefix(k, "unused") {
			if st, vol, err := s.rootfsVolume(map[string]string{"rootfs": v}); err == nil {
				st.freeVol(vol)
			}
		}
	}
	if err := s.removeLXC(c.vmid); err != nil {
		return err
	}
	s.mu.Lock()
	c.deleted = true
	if s.cts[c.vmid] == c {
		delete(s.cts, c.vmid)
	}
	s.mu.Unlock()
	if t != nil {
		t.logf("CT %d destroyed", c.vmid)
	}
	return nil
}

// freeUnreferenced removes disks named for vmid that no config references.
func (s *Server) freeUnreferenced(vmid int) {
	for _, st := range s.storages {
		for _, vol := range st.disksOf(vmid) {
			st.freeVol(vol)
		}
	}
}
