package pvesim

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// lxcClone is POST /nodes/{node}/lxc/{vmid}/clone, as pve-container's clone_vm: a full
// clone copies the root disk (of a snapshot, or of a stopped CT); a linked clone needs a
// template or a snapshot on a storage with the clone feature (here it is a copy too).
// The source holds a 'disk' lock and the new CT a 'create' lock while the task runs.
func (s *Server) lxcClone(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	newid := r.intOr("newid", 0)
	if t := r.str("target"); t != "" && t != s.cfg.Node && t != "localhost" {
		return nil, errorf(http.StatusInternalServerError, "no such cluster node '%s'", t)
	}
	if r.has("pool") {
		return nil, errorf(http.StatusInternalServerError, "pool '%s' does not exist", r.str("pool"))
	}
	snapname := r.str("snapname")
	targetSID := r.str("storage")
	if err := s.checkLock(c); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.vmidTaken(newid) {
		s.mu.Unlock()
		return nil, errorf(http.StatusInternalServerError, "CT %d already exists on node '%s'", newid, s.cfg.Node)
	}
	src := copyConf(c.conf)
	raw := append([][2]string(nil), c.lxc...)
	if snapname != "" {
		sn := c.snapshots[snapname]
		if sn == nil {
			s.mu.Unlock()
			return nil, errorf(http.StatusInternalServerError, "snapshot '%s' does not exist", snapname)
		}
		src, raw = copyConf(sn.conf), append([][2]string(nil), sn.lxc...)
	}
	s.mu.Unlock()
	template := src["template"] == "1"
	full := r.boolOr("full", !template)
	if targetSID != "" && !full {
		return nil, errorf(http.StatusInternalServerError, "parameter 'storage' not allowed for linked clones")
	}
	fromSt, vol, err := s.rootfsVolume(src)
	if err != nil {
		return nil, errorf(http.StatusInternalServerError, "%v", err)
	}
	running := s.running(c)
	if full && running && snapname == "" {
		return nil, errorf(http.StatusInternalServerError, "Full clone of a running container is only possible from a snapshot")
	}
	if !full && !(fromSt.snapshots && (template || snapname != "")) {
		return nil, errorf(http.StatusInternalServerError, "Linked clone feature for '%s:%s' is not available", fromSt.id, vol)
	}
	toSt := fromSt
	if targetSID != "" {
		toSt = s.storages[targetSID]
		if toSt == nil {
			return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", targetSID)
		}
		if !toSt.has("rootdir") {
			return nil, errorf(http.StatusInternalServerError, "storage '%s' does not allow content type 'rootdir' (Container)", targetSID)
		}
	}
	newconf := map[string]string{}
	for k, v := range src {
		switch {
		case strings.HasPrefix(k, "unused"), k == "lock", k == "template":
			continue
		case reNetKey.MatchString(k):
			if net, err := s.parseNet(v); err == nil {
				net["hwaddr"] = randomMAC()
				v = printNet(net)
			}
		}
		newconf[k] = v
	}
	if h := r.str("hostname"); h != "" {
		newconf["hostname"] = h
	}
	if d := r.str("description"); d != "" {
		newconf["description"] = d
	}
	newconf["lock"] = "create"
	nc := &ct{vmid: newid, conf: newconf, lxc: raw, snapshots: map[string]*ctSnapshot{}}
	s.mu.Lock()
	if s.vmidTaken(newid) {
		s.mu.Unlock()
		return nil, errorf(http.StatusInternalServerError, "CT %d already exists on node '%s'", newid, s.cfg.Node)
	}
	s.cts[newid] = nc
	c.conf["lock"] = "disk"
	s.mu.Unlock()
	rootOpts, _ := s.parseMP(src["rootfs"])
	return s.startTask(r, "vzclone", strconv.Itoa(c.vmid), func(ctx context.Context, t *task) error {
		nc.op.Lock()
		defer nc.op.Unlock()
		defer s.ctSet(c, "lock", "")
		t.logf("create full clone of mountpoint rootfs (%s:%s)", fromSt.id, vol)
		newvol, err := toSt.cloneVol(ctx, fromSt, vol, snapname, newid)
		if err != nil {
			s.mu.Lock()
			nc.deleted = true
			delete(s.cts, newid)
			s.mu.Unlock()
			return fmt.Errorf("clone failed: %v", err)
		}
		rootOpts["volume"] = toSt.id + ":" + newvol
		s.mu.Lock()
		nc.conf["rootfs"] = s.printMP(rootOpts)
		delete(nc.conf, "lock")
		s.mu.Unlock()
		return nil
	}, func() {
		s.mu.Lock()
		nc.deleted = true
		delete(s.cts, newid)
		delete(c.conf, "lock")
		s.mu.Unlock()
	}), nil
}

// randomMAC is PVE's random_ether_addr with its default prefix BC:24:11.
func randomMAC() string {
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("BC:24:11:%02X:%02X:%02X", b[0], b[1], b[2])
}
