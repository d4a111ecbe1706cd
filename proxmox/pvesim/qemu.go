package pvesim

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file serves /nodes/{node}/qemu: list, config, delete, and keeps the emulator's VMs.
// Status changes are in qemu_status.go, snapshots in qemu_snapshot.go, clone in
// qemu_clone.go, the guest agent in qemu_agent.go, and the stand-in guest that runs behind
// a VM in qemu_guest.go.

// TemplateVMID is the VM template the emulator starts with: a guest OS with the QEMU guest
// agent, agent enabled in its config, as an operator prepares one for lxcri's proxmox-vm
// backend.
const TemplateVMID = 9000

// vm is one QEMU VM: its PVE config (/etc/pve/qemu-server/VMID.conf), snapshots and, while
// it runs, the stand-in guest behind it.
type vm struct {
	vmid int
	// op serializes the operations on the VM, as qemu-server's config file lock does.
	op sync.Mutex

	// guarded by Server.mu
	conf      map[string]string
	snapshots map[string]*vmSnapshot
	parent    string
	deleted   bool
	guest     *guest
}

type vmSnapshot struct {
	conf        map[string]string
	description string
	snaptime    int64
	parent      string
	vmstate     bool
	// mem is the guest whose memory the snapshot holds: the stand-in keeps the frozen
	// guest itself (see README.md). nil once a rollback resumed it, or without vmstate.
	mem *guest
}

func (s *Server) routesQemu() {
	s.route("GET", "/nodes/{node}/qemu", s.qemuList)
	s.route("GET", "/nodes/{node}/qemu/{vmid}", s.qemuDirIndex)
	s.route("DELETE", "/nodes/{node}/qemu/{vmid}", s.qemuDelete)
	s.route("GET", "/nodes/{node}/qemu/{vmid}/config", s.qemuConfigGet)
	s.route("PUT", "/nodes/{node}/qemu/{vmid}/config", s.qemuConfigPut)
	s.route("POST", "/nodes/{node}/qemu/{vmid}/config", s.qemuConfigPost)
	s.route("POST", "/nodes/{node}/qemu/{vmid}/clone", s.qemuClone)
	s.routesQemuStatus()
	s.routesQemuSnapshot()
	s.routesQemuAgent()
}

// vmidTaken says whether a CT or a VM has the VMID (they share one space). Call with
// s.mu held.
func (s *Server) vmidTaken(vmid int) bool {
	return s.cts[vmid] != nil || s.vms[vmid] != nil
}

// initQemu makes the template VM the emulator starts with. Its disk holds the stand-in
// guest OS (qemu_guest.go); when that cannot be built here the template still exists and
// starting a clone fails with the reason.
func (s *Server) initQemu() error {
	st := s.storages[DefaultStorage]
	vol, dir, err := st.allocVMDisk(TemplateVMID, "base")
	if err != nil {
		return fmt.Errorf("pvesim: template VM disk: %w", err)
	}
	if err := buildGuestOS(dir); err != nil {
		s.logf("template VM %d: no guest OS: %v", TemplateVMID, err)
	}
	conf := map[string]string{
		"name":     "lxcri-template",
		"agent":    "1",
		"ostype":   "l26",
		"memory":   "512",
		"cores":    "1",
		"sockets":  "1",
		"scsihw":   "virtio-scsi-single",
		"scsi0":    DefaultStorage + ":" + vol + ",size=1G",
		"boot":     "order=scsi0",
		"net0":     "virtio=" + randomMAC() + ",bridge=vmbr0",
		"smbios1":  "uuid=" + newUUID(),
		"vmgenid":  newUUID(),
		"template": "1",
		"meta":     fmt.Sprintf("creation-qemu=9.2.0,ctime=%d", time.Now().Unix()),
	}
	s.mu.Lock()
	s.vms[TemplateVMID] = &vm{vmid: TemplateVMID, conf: conf, snapshots: map[string]*vmSnapshot{}}
	s.mu.Unlock()
	return nil
}

// nodeVM is the VM a request under /nodes/{node}/qemu/{vmid} names, after checking the
// node as PVE does first.
func (s *Server) nodeVM(r *request) (*vm, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	return s.lookupVM(r)
}

// lookupVM finds a VM; a missing one is qemu-server's 500 about its config file.
func (s *Server) lookupVM(r *request) (*vm, error) {
	vmid := r.intOr("vmid", 0)
	s.mu.Lock()
	v := s.vms[vmid]
	deleted := v != nil && v.deleted
	s.mu.Unlock()
	if v == nil || deleted {
		return nil, errorf(http.StatusInternalServerError, "Configuration file 'nodes/%s/qemu-server/%d.conf' does not exist", s.cfg.Node, vmid)
	}
	return v, nil
}

func (s *Server) vmGet(v *vm, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return v.conf[key]
}

func (s *Server) vmSet(v *vm, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if value == "" {
		delete(v.conf, key)
		return
	}
	v.conf[key] = value
}

// vmCheckLock is check_lock for VMs.
func (s *Server) vmCheckLock(v *vm) error {
	if l := s.vmGet(v, "lock"); l != "" {
		return errorf(http.StatusInternalServerError, "VM is locked (%s)", l)
	}
	return nil
}

// vmDisks returns the VM's disk keys (scsiN, virtioN, sataN, ideN, efidisk0, ...) whose
// value is a volume on one of the emulator's storages.
func (s *Server) vmDisks(conf map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range conf {
		if !reVMDiskKey.MatchString(k) {
			continue
		}
		vol, _, _ := strings.Cut(v, ",")
		if sid, _, ok := strings.Cut(vol, ":"); ok && s.storages[sid] != nil {
			out[k] = vol
		}
	}
	return out
}

// bootDisk is the VM's first disk: the stand-in guest's root filesystem.
func (s *Server) bootDisk(conf map[string]string) (*storage, string, error) {
	disks := s.vmDisks(conf)
	if len(disks) == 0 {
		return nil, "", fmt.Errorf("no bootable disk")
	}
	keys := sortedKeys(disks)
	volid := disks[keys[0]]
	sid, vol, _ := strings.Cut(volid, ":")
	return s.storages[sid], vol, nil
}

func (s *Server) qemuDirIndex(r *request) (any, error) {
	if _, err := s.lookupVM(r); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, sub := range []string{"config", "pending", "status", "unlink", "vncproxy", "termproxy", "migrate", "resize", "move", "rrd", "rrddata", "monitor", "agent", "snapshot", "spiceproxy", "sendkey", "firewall", "mtunnel", "remote_migrate"} {
		out = append(out, map[string]string{"subdir": sub})
	}
	return out, nil
}

func (s *Server) qemuList(r *request) (any, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	vms := make([]*vm, 0, len(s.vms))
	for _, v := range s.vms {
		if !v.deleted {
			vms = append(vms, v)
		}
	}
	s.mu.Unlock()
	sort.Slice(vms, func(i, j int) bool { return vms[i].vmid < vms[j].vmid })
	out := []map[string]any{}
	for _, v := range vms {
		row := s.vmSummary(v)
		delete(row, "agent")
		delete(row, "qmpstatus")
		out = append(out, row)
	}
	return out, nil
}

// vmSummary is what the VM list and status/current share.
func (s *Server) vmSummary(v *vm) map[string]any {
	s.mu.Lock()
	conf := copyConf(v.conf)
	g := v.guest
	s.mu.Unlock()
	mem := int64(512)
	if n, err := strconv.ParseInt(conf["memory"], 10, 64); err == nil {
		mem = n
	}
	cores, sockets := 1, 1
	if n, err := strconv.Atoi(conf["cores"]); err == nil {
		cores = n
	}
	if n, err := strconv.Atoi(conf["sockets"]); err == nil {
		sockets = n
	}
	cpus := float64(cores * sockets)
	if n, err := strconv.ParseFloat(conf["vcpus"], 64); err == nil && n > 0 {
		cpus = n
	}
	name := conf["name"]
	if name == "" {
		name = "VM " + strconv.Itoa(v.vmid)
	}
	var maxdisk int64
	if keys := sortedKeys(s.vmDisks(conf)); len(keys) > 0 {
		ps := map[string]string{}
		for _, kv := range strings.Split(conf[keys[0]], ",")[1:] {
			if a, b, ok := strings.Cut(kv, "="); ok {
				ps[a] = b
			}
		}
		maxdisk = diskSize(ps)
	}
	row := map[string]any{
		"vmid": v.vmid, "name": name, "status": "stopped", "qmpstatus": "stopped",
		"cpus": cpus, "cpu": 0, "maxmem": mem << 20, "mem": 0, "maxdisk": maxdisk, "disk": 0,
		"uptime": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
	}
	if conf["agent"] != "" {
		row["agent"] = 0
		if agentEnabled(conf) {
			row["agent"] = 1
		}
	}
	if t := conf["tags"]; t != "" {
		row["tags"] = t
	}
	if l := conf["lock"]; l != "" {
		row["lock"] = l
	}
	if conf["template"] == "1" {
		row["template"] = 1
	}
	if g != nil {
		if state, pid := g.state(); state != "stopped" {
			row["status"] = "running"
			row["qmpstatus"] = "running"
			if state == "frozen" {
				row["qmpstatus"] = "paused"
			}
			row["pid"] = pid
			row["uptime"] = int64(time.Since(g.started) / time.Second)
			row["mem"] = g.memoryUsage()
			row["cpu"] = g.cpuFraction()
		}
	}
	return row
}

// agentEnabled reads the agent property string: "1", "enabled=1", "1,fstrim_cloned_disks=1".
func agentEnabled(conf map[string]string) bool {
	for i, part := range strings.Split(conf["agent"], ",") {
		k, val, ok := strings.Cut(part, "=")
		if !ok && i == 0 {
			k, val = "enabled", part
		}
		if k == "enabled" {
			b, _ := parseBool(val)
			return b == "1"
		}
	}
	return false
}

// qemuConfigGet answers the config (or a snapshot's) with the schema's types and digest.
func (s *Server) qemuConfigGet(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	conf := copyConf(v.conf)
	if sn := r.str("snapshot"); sn != "" {
		snap := v.snapshots[sn]
		if snap == nil {
			s.mu.Unlock()
			return nil, errorf(http.StatusInternalServerError, "snapshot '%s' does not exist", sn)
		}
		conf = copyConf(snap.conf)
	}
	digest := confDigest(v.conf, nil)
	s.mu.Unlock()
	out := s.typedQemuConf(conf)
	out["digest"] = digest
	return out, nil
}

func (s *Server) typedQemuConf(conf map[string]string) map[string]any {
	out := map[string]any{}
	m := s.schema.Method("PUT", "/nodes/{node}/qemu/{vmid}/config")
	props, _ := m.Parameters["properties"].(map[string]any)
	for k, val := range conf {
		sch, _ := props[schemaKeyFor(props, k)].(map[string]any)
		switch sch["type"] {
		case "integer", "boolean":
			if n, err := strconv.ParseInt(val, 10, 64); err == nil {
				out[k] = n
				continue
			}
		case "number":
			if f, err := strconv.ParseFloat(val, 64); err == nil {
				out[k] = f
				continue
			}
		}
		out[k] = val
	}
	return out
}

// qemuConfigRootOnly are the VM options PVE keeps to root@pam (qemu-server's
// check_vm_modify_config_perm and friends): no API token may set them.
var qemuConfigRootOnly = map[string]string{
	"args":       "changing 'args' is only allowed for root@pam",
	"hookscript": "changing the hookscript is only allowed for root@pam",
	"lock":       "changing the lock is only allowed for root@pam",
}

// qemuConfigSkip are the parameters of PUT/POST config that are not config keys.
var qemuConfigSkip = map[string]bool{
	"node": true, "vmid": true, "delete": true, "revert": true, "digest": true, "force": true,
	"skiplock": true, "background_delay": true, "import-working-storage": true,
}

// applyQemuConfig changes a VM's config as update_vm_api does for the options the
// emulator knows: values are set, `delete` removes keys, `digest` must match. Changes to
// a running VM are kept for its next start (PVE applies hotpluggable ones at once and
// keeps the rest pending).
func (s *Server) applyQemuConfig(r *request, v *vm) error {
	if err := checkSkiplock(r); err != nil {
		return err
	}
	for k := range r.params {
		if msg, ok := qemuConfigRootOnly[k]; ok && r.user != "root@pam" {
			return permError(msg)
		}
		if reHostPCIKey.MatchString(k) || reUSBKey.MatchString(k) || reSerialKey.MatchString(k) {
			return permError(fmt.Sprintf("changing '%s' is only allowed for root@pam", k))
		}
		if reVMDiskKey.MatchString(k) {
			return errorf(http.StatusNotImplemented, "adding or changing disks (%s) is not implemented by pvesim", k)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := r.str("digest"); d != "" && d != confDigest(v.conf, nil) {
		return errorf(http.StatusInternalServerError, "detected modified configuration - file changed by other user? Try again.")
	}
	if l := v.conf["lock"]; l != "" {
		return errorf(http.StatusInternalServerError, "VM is locked (%s)", l)
	}
	if v.conf["template"] == "1" && r.has("template") && r.str("template") == "0" {
		return errorf(http.StatusInternalServerError, "you can't convert a template to a VM")
	}
	for _, k := range splitList(r.str("delete")) {
		if reVMDiskKey.MatchString(k) {
			return errorf(http.StatusNotImplemented, "removing disks (%s) is not implemented by pvesim", k)
		}
		if r.has(k) {
			return errorf(http.StatusBadRequest, "you can't modify and delete the same option '%s'", k)
		}
		delete(v.conf, k)
	}
	for k, val := range r.params {
		if qemuConfigSkip[k] {
			continue
		}
		v.conf[k] = scalarString(val)
	}
	if tags, ok := v.conf["tags"]; ok {
		v.conf["tags"] = uniqueTags(tags)
	}
	return nil
}

// qemuConfigPut is the synchronous config update; it answers null.
func (s *Server) qemuConfigPut(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	v.op.Lock()
	defer v.op.Unlock()
	return nil, s.applyQemuConfig(r, v)
}

// qemuConfigPost is the asynchronous one: a qmconfig task.
func (s *Server) qemuConfigPost(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	return s.startTask(r, "qmconfig", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		v.op.Lock()
		defer v.op.Unlock()
		return s.applyQemuConfig(r, v)
	}), nil
}

// qemuDelete is DELETE /nodes/{node}/qemu/{vmid}: a running VM is refused at once, as
// qemu-server refuses it; the task frees its disks, its snapshots' held guests and its
// config.
func (s *Server) qemuDelete(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	if err := checkSkiplock(r); err != nil {
		return nil, err
	}
	early := func() error {
		if s.vmGet(v, "protection") == "1" {
			return errorf(http.StatusInternalServerError, "can't remove VM %d - protection mode enabled", v.vmid)
		}
		if s.vmRunning(v) {
			return errorf(http.StatusInternalServerError, "VM %d is running - destroy failed", v.vmid)
		}
		return s.vmCheckLock(v)
	}
	if err := early(); err != nil {
		return nil, err
	}
	unreferenced := r.boolOr("destroy-unreferenced-disks", true)
	purge := r.boolOr("purge", false)
	return s.startTask(r, "qmdestroy", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		v.op.Lock()
		defer v.op.Unlock()
		if err := early(); err != nil {
			return err
		}
		if err := s.destroyVM(v, t); err != nil {
			return err
		}
		if unreferenced {
			s.freeUnreferenced(v.vmid)
		}
		if purge {
			t.logf("purging VM %d from related configurations..", v.vmid)
		}
		return nil
	}), nil
}

// destroyVM stops a VM's guest and the guests its snapshots hold, frees its disks and
// removes it. t may be nil (server shutdown).
func (s *Server) destroyVM(v *vm, t *task) error {
	s.mu.Lock()
	conf := copyConf(v.conf)
	g := v.guest
	v.guest = nil
	var held []*guest
	for _, sn := range v.snapshots {
		if sn.mem != nil {
			held = append(held, sn.mem)
			sn.mem = nil
		}
	}
	s.mu.Unlock()
	var ferr error
	for _, x := range append(held, g) {
		if x == nil {
			continue
		}
		if err := x.destroy(); err != nil && ferr == nil {
			ferr = err
		}
	}
	if ferr != nil {
		return ferr
	}
	for _, volid := range s.vmDisks(conf) {
		sid, vol, _ := strings.Cut(volid, ":")
		if st := s.storages[sid]; st != nil {
			if err := st.freeVol(vol); err != nil {
				return err
			}
		}
	}
	s.mu.Lock()
	v.deleted = true
	if s.vms[v.vmid] == v {
		delete(s.vms, v.vmid)
	}
	s.mu.Unlock()
	if t != nil {
		t.logf("VM %d destroyed", v.vmid)
	}
	return nil
}

// closeQemu destroys every VM when the emulator stops.
func (s *Server) closeQemu() error {
	s.mu.Lock()
	vms := make([]*vm, 0, len(s.vms))
	for _, v := range s.vms {
		vms = append(vms, v)
	}
	s.mu.Unlock()
	var err error
	for _, v := range vms {
		if e := s.destroyVM(v, nil); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// qemuResources are the VMs' rows of /cluster/resources (type qemu, id qemu/VMID).
func (s *Server) qemuResources() []map[string]any {
	s.mu.Lock()
	vms := make([]*vm, 0, len(s.vms))
	for _, v := range s.vms {
		if !v.deleted {
			vms = append(vms, v)
		}
	}
	s.mu.Unlock()
	sort.Slice(vms, func(i, j int) bool { return vms[i].vmid < vms[j].vmid })
	var out []map[string]any
	for _, v := range vms {
		row := s.vmSummary(v)
		row["id"] = "qemu/" + strconv.Itoa(v.vmid)
		row["type"] = "qemu"
		row["node"] = s.cfg.Node
		row["maxcpu"] = row["cpus"]
		delete(row, "cpus")
		delete(row, "pid")
		delete(row, "agent")
		delete(row, "qmpstatus")
		if _, ok := row["template"]; !ok {
			row["template"] = 0
		}
		out = append(out, row)
	}
	return out
}
