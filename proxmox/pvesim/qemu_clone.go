package pvesim

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// qemuClone is POST /nodes/{node}/qemu/{vmid}/clone, as qemu-server's clone_vm: a linked
// clone (the default for a template) needs a template and a storage with the clone
// feature; a full clone (the default otherwise) copies every disk, of a snapshot when one
// is named, and of a running VM through its frozen guest. A clone never carries a
// snapshot's saved RAM (PVE clones disks only). The new VM holds a 'clone' lock while the
// task copies its disks. Disks are copies here even for linked clones, and are named
// vm-NEWID-disk-N (PVE names a linked clone's base-VMID-disk-N/vm-NEWID-disk-N).
func (s *Server) qemuClone(r *request) (any, error) {
	v, err := s.nodeVM(r)
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
	if err := s.vmCheckLock(v); err != nil {
		return nil, err
	}
	s.mu.Lock()
	src := copyConf(v.conf)
	if snapname != "" {
		sn := v.snapshots[snapname]
		if sn == nil {
			s.mu.Unlock()
			return nil, errorf(http.StatusInternalServerError, "snapshot '%s' does not exist", snapname)
		}
		src = copyConf(sn.conf)
	}
	s.mu.Unlock()
	template := src["template"] == "1"
	full := r.boolOr("full", !template)
	if !full && targetSID != "" {
		return nil, errorf(http.StatusInternalServerError, "parameter 'storage' not allowed for linked clones")
	}
	if !full && r.has("format") {
		return nil, errorf(http.StatusInternalServerError, "parameter 'format' not allowed for linked clones")
	}
	disks := s.vmDisks(src)
	keys := sortedKeys(disks)
	for _, k := range keys {
		sid, _, _ := strings.Cut(disks[k], ":")
		if !full && (!template || !s.storages[sid].snapshots) {
			return nil, errorf(http.StatusInternalServerError, "Linked clone feature is not supported for drive '%s'", k)
		}
	}
	toSt := (*storage)(nil)
	if targetSID != "" {
		toSt = s.storages[targetSID]
		if toSt == nil {
			return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", targetSID)
		}
		if !toSt.has("images") {
			return nil, errorf(http.StatusInternalServerError, "storage '%s' does not support vm images", targetSID)
		}
	}
	newconf := map[string]string{}
	for k, val := range src {
		switch {
		case strings.HasPrefix(k, "unused"), k == "lock", k == "template", k == "parent", k == "vmstate", k == "runningmachine", k == "runningcpu", k == "snaptime":
			continue
		case reNetKey.MatchString(k):
			val = reNetMAC.ReplaceAllString(val, "${1}="+randomMAC())
		case k == "smbios1":
			val = reSmbiosUUID.ReplaceAllString(val, "uuid="+newUUID())
		case k == "vmgenid":
			val = newUUID()
		}
		newconf[k] = val
	}
	newconf["name"] = "Copy-of-VM-" + src["name"]
	if n := r.str("name"); n != "" {
		newconf["name"] = n
	}
	if d := r.str("description"); d != "" {
		newconf["description"] = d
	}
	newconf["lock"] = "clone"
	nv := &vm{vmid: newid, conf: newconf, snapshots: map[string]*vmSnapshot{}}
	s.mu.Lock()
	if s.vmidTaken(newid) {
		s.mu.Unlock()
		return nil, errorf(http.StatusInternalServerError, "unable to create VM %d: config file already exists", newid)
	}
	s.vms[newid] = nv
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		nv.deleted = true
		if s.vms[newid] == nv {
			delete(s.vms, newid)
		}
		s.mu.Unlock()
	}
	return s.startTask(r, "qmclone", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		nv.op.Lock()
		defer nv.op.Unlock()
		// a running source without a snapshot is copied through its frozen guest
		if g := s.vmGuest(v); g != nil && snapname == "" {
			if st, _ := g.state(); st == "running" {
				if err := g.freeze(); err == nil {
					defer g.thaw()
				}
			}
		}
		var made []string
		for _, k := range keys {
			sid, vol, _ := strings.Cut(disks[k], ":")
			from := s.storages[sid]
			to := from
			if toSt != nil {
				to = toSt
			}
			what := "full"
			if !full {
				what = "linked"
			}
			t.logf("create %s clone of drive %s (%s)", what, k, disks[k])
			newvol, err := cloneVMDisk(ctx, from, vol, snapname, to, newid)
			if err != nil {
				for _, m := range made {
					sid, vol, _ := strings.Cut(m, ":")
					s.storages[sid].freeVol(vol)
				}
				forget()
				return fmt.Errorf("clone failed: %v", err)
			}
			made = append(made, to.id+":"+newvol)
			opts := ""
			if _, rest, ok := strings.Cut(src[k], ","); ok {
				opts = "," + rest
			}
			s.mu.Lock()
			nv.conf[k] = to.id + ":" + newvol + opts
			s.mu.Unlock()
		}
		s.vmSet(nv, "lock", "")
		return nil
	}, forget), nil
}

var (
	reNetMAC     = regexp.MustCompile(`((?:^|,)(?:virtio|e1000|e1000e|rtl8139|vmxnet3|macaddr))=[0-9A-Fa-f:]{17}`)
	reSmbiosUUID = regexp.MustCompile(`uuid=[0-9a-fA-F-]+`)
)

// cloneVMDisk copies a VM disk (or its snapshot) into a new disk of newid.
func cloneVMDisk(ctx context.Context, from *storage, vol, snap string, to *storage, newid int) (string, error) {
	src, err := from.volPath(vol)
	if err != nil {
		return "", err
	}
	if snap != "" {
		if src, err = from.snapPath(vol, snap); err != nil {
			return "", err
		}
	}
	newvol, dst, err := to.allocVMDisk(newid, "vm")
	if err != nil {
		return "", err
	}
	if err := os.Remove(dst); err != nil {
		return "", err
	}
	if err := copyTree(ctx, src, dst); err != nil {
		to.freeVol(newvol)
		return "", err
	}
	return newvol, nil
}
