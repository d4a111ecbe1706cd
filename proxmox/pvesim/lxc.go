package pvesim

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// This file serves /nodes/{node}/lxc: list, create, config, delete. Status changes are in
// lxc_status.go, snapshots in lxc_snapshot.go, clone in lxc_clone.go.

func (s *Server) routesLXC() {
	s.route("GET", "/nodes/{node}/lxc", s.lxcList)
	s.route("POST", "/nodes/{node}/lxc", s.lxcCreate)
	s.route("GET", "/nodes/{node}/lxc/{vmid}", s.lxcDirIndex)
	s.route("DELETE", "/nodes/{node}/lxc/{vmid}", s.lxcDelete)
	s.route("GET", "/nodes/{node}/lxc/{vmid}/config", s.lxcConfigGet)
	s.route("PUT", "/nodes/{node}/lxc/{vmid}/config", s.lxcConfigPut)
	s.routesLXCStatus()
	s.routesLXCSnapshot()
	s.route("POST", "/nodes/{node}/lxc/{vmid}/clone", s.lxcClone)
}

// permError is raise_perm_exc: 403 "Permission check failed (...)".
func permError(msg string) *apiError {
	return errorf(http.StatusForbidden, "Permission check failed (%s)", msg)
}

var (
	reMPKey  = regexp.MustCompile(`^mp\d+$`)
	reDevKey = regexp.MustCompile(`^dev\d+$`)
	reNetKey = regexp.MustCompile(`^net\d+$`)
)

// checkModifyPerm is check_ct_modify_config_perm for an API token: a token is never
// root@pam, so bind and device mount points, device passthrough, the hookscript and
// feature flags other than nesting are refused.
func (s *Server) checkModifyPerm(r *request, oldconf map[string]string, keys []string, unprivileged bool) error {
	if r.user == "root@pam" {
		return nil
	}
	for _, k := range keys {
		v := r.str(k)
		switch {
		case k == "rootfs" || reMPKey.MatchString(k):
			ps, err := s.parseMP(v)
			if err == nil && strings.HasPrefix(ps["volume"], "/") {
				typ := "bind"
				if strings.HasPrefix(ps["volume"], "/dev/") {
					typ = "device"
				}
				return permError("mount point type " + typ + " is only allowed for root@pam")
			}
		case reDevKey.MatchString(k):
			return permError("configuring device passthrough is only allowed for root@pam")
		case k == "hookscript":
			return permError("changing the hookscript is only allowed for root@pam")
		case k == "features":
			if !unprivileged {
				return permError("changing feature flags for privileged container is only allowed for root@pam")
			}
			f, _ := s.parseFeatures(v)
			old, _ := s.parseFeatures(oldconf["features"])
			for _, name := range append(sortedKeys(f), sortedKeys(old)...) {
				if name != "nesting" && f[name] != old[name] {
					return permError("changing feature flags (except nesting) is only allowed for root@pam")
				}
			}
		}
	}
	return nil
}

func (s *Server) parseFeatures(v string) (map[string]string, error) {
	m := s.schema.Method("POST", "/nodes/{node}/lxc")
	props, _ := m.Parameters["properties"].(map[string]any)
	f, _ := props["features"].(map[string]any)
	format, _ := f["format"].(map[string]any)
	return ParsePropertyString(format, v)
}

// createOnly are the create parameters that do not go into the CT config.
var createOnly = map[string]bool{
	"node": true, "vmid": true, "ostemplate": true, "storage": true, "rootfs": true, "start": true,
	"unprivileged": true, "password": true, "ssh-public-keys": true, "pool": true, "force": true,
	"restore": true, "unique": true, "bwlimit": true, "ignore-unpack-errors": true, "ha-managed": true,
}

var reNumSize = regexp.MustCompile(`^\d+(\.\d+)?$`)

func (s *Server) lxcCreate(r *request) (any, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	vmid := r.intOr("vmid", 0)
	if r.boolOr("restore", false) {
		return nil, errorf(http.StatusNotImplemented, "restore is not implemented by pvesim")
	}
	unpriv := r.boolOr("unprivileged", true)
	var keys []string
	for k := range r.params {
		keys = append(keys, k)
	}
	if err := s.checkModifyPerm(r, nil, sortedKeys(r.params), unpriv); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if reMPKey.MatchString(k) {
			return nil, errorf(http.StatusNotImplemented, "mount points (%s) are not implemented by pvesim", k)
		}
		if strings.HasPrefix(k, "unused") {
			delete(r.params, k) // "ignoring 'unusedN', cannot create/restore with unused volume"
		}
	}
	sid := r.str("storage")
	if sid == "" {
		sid = DefaultTemplateStorage
	}
	rootfs := r.str("rootfs")
	switch {
	case rootfs == "":
		rootfs = sid + ":4"
	case reNumSize.MatchString(rootfs):
		rootfs = sid + ":" + rootfs
	}
	mp, err := s.parseMP(rootfs)
	if err != nil {
		return nil, paramError(map[string]string{"rootfs": err.Error()})
	}
	rsid, size, ok := strings.Cut(mp["volume"], ":")
	if !ok || !reNumSize.MatchString(size) {
		return nil, errorf(http.StatusNotImplemented, "pvesim creates the root disk itself: rootfs must be STORAGE:SIZE_IN_GiB, not %q", mp["volume"])
	}
	st := s.storages[rsid]
	if st == nil {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", rsid)
	}
	if !st.has("rootdir") {
		return nil, paramError(map[string]string{"storage": fmt.Sprintf("storage '%s' does not support container directories", rsid)})
	}
	ostemplate := r.str("ostemplate")
	tmpl, err := s.templatePath(ostemplate)
	if err != nil {
		return nil, errorf(http.StatusInternalServerError, "%v", err)
	}

	conf := map[string]string{}
	for k, v := range r.params {
		if createOnly[k] {
			continue
		}
		conf[k] = scalarString(v)
	}
	if tags, ok := conf["tags"]; ok {
		conf["tags"] = uniqueTags(tags)
	}
	if _, ok := conf["memory"]; !ok {
		conf["memory"] = "512"
	}
	if _, ok := conf["swap"]; !ok {
		conf["swap"] = "512"
	}
	if _, ok := conf["arch"]; !ok {
		conf["arch"] = "amd64"
	}
	if unpriv {
		conf["unprivileged"] = "1"
	}
	conf["lock"] = "create"

	s.mu.Lock()
	if s.vmidTaken(vmid) {
		s.mu.Unlock()
		return nil, errorf(http.StatusInternalServerError, "CT %d already exists on node '%s'", vmid, s.cfg.Node)
	}
	c := &ct{vmid: vmid, conf: conf, snapshots: map[string]*ctSnapshot{}}
	s.cts[vmid] = c
	s.mu.Unlock()

	start := r.boolOr("start", false)
	sizeGiB := size
	return s.startTask(r, "vzcreate", strconv.Itoa(vmid), func(ctx context.Context, t *task) error {
		c.op.Lock()
		defer c.op.Unlock()
		err := s.createCT(ctx, t, c, st, tmpl, sizeGiB, unpriv)
		if err != nil {
			s.mu.Lock()
			c.deleted = true
			delete(s.cts, vmid)
			s.mu.Unlock()
			s.removeLXC(vmid)
			return fmt.Errorf("unable to create CT %d - %v", vmid, err)
		}
		s.ctSet(c, "lock", "")
		if start {
			return s.startLXC(ctx, t, c)
		}
		return nil
	}, func() {
		s.mu.Lock()
		c.deleted = true
		delete(s.cts, vmid)
		s.mu.Unlock()
	}), nil
}

// createCT makes the root disk from the template and fills the config from the image,
// as pve-container's create_vm and restore_oci_archive.
func (s *Server) createCT(ctx context.Context, t *task, c *ct, st *storage, tmpl, sizeGiB string, unpriv bool) error {
	oci, err := isOCIArchive(tmpl)
	if err != nil {
		return err
	}
	if !oci {
		return fmt.Errorf("pvesim creates CTs from OCI image archives only; '%s' is not one", path.Base(tmpl))
	}
	vol, dir, err := st.allocSubvol(c.vmid)
	if err != nil {
		return err
	}
	t.logf("extracting OCI image archive '%s' into %s:%s", path.Base(tmpl), st.id, vol)
	shift := 0
	if unpriv {
		shift = unprivShift
	}
	img, err := squashImage(ctx, tmpl, s.tmpDir(), dir, shift, t.warn)
	if err != nil {
		st.freeVol(vol)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.conf["rootfs"] = fmt.Sprintf("%s:%s,size=%sG", st.id, vol, sizeGiB)
	if c.conf["ostype"] == "" {
		c.conf["ostype"] = "unmanaged"
	}
	for _, l := range applyImageConfig(c.conf, img, dir, t) {
		c.lxc = append(c.lxc, l)
	}
	return nil
}

// applyImageConfig maps an image config onto a CT config as restore_oci_archive does,
// and returns the raw lxc keys it adds. The image's Env replaces an env given at create.
func applyImageConfig(conf map[string]string, img *ociImageConfig, rootfs string, t *task) [][2]string {
	var raw [][2]string
	init := append(append([]string(nil), img.Entrypoint...), img.Cmd...)
	if len(init) > 0 && init[0] != "/sbin/init" {
		conf["entrypoint"] = cmd2string(init)
		conf["cmode"] = "console"
		for _, k := range sortedKeys(conf) {
			if !reNetKey.MatchString(k) {
				continue
			}
			if !strings.Contains(conf[k], "host-managed=") {
				t.logf("Auto-Enabling host-managed network for network device %s.", k)
				conf[k] += ",host-managed=1"
			}
		}
	}
	if img.User != "" {
		uid, gid, err := resolveOCIUser(img.User, rootfs)
		if err != nil {
			t.warn("%v", err)
		} else {
			raw = append(raw, [2]string{"lxc.init.uid", strconv.Itoa(uid)}, [2]string{"lxc.init.gid", strconv.Itoa(gid)})
		}
	}
	if img.WorkingDir != "" {
		raw = append(raw, [2]string{"lxc.init.cwd", img.WorkingDir})
	}
	if len(img.Env) > 0 {
		conf["env"] = strings.Join(img.Env, "\x00")
	}
	sig := img.StopSignal
	if sig == "" {
		sig = "SIGTERM"
	}
	raw = append(raw, [2]string{"lxc.signal.halt", sig})
	return raw
}

// resolveOCIUser resolves an image's User (user[:group], names or ids) in its rootfs.
func resolveOCIUser(user, rootfs string) (int, int, error) {
	name, group, _ := strings.Cut(user, ":")
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return 0, 0, err
	}
	defer root.Close()
	lookup := func(file, key string) (int, int, bool) {
		b, err := root.ReadFile(file)
		if err != nil {
			return 0, 0, false
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 4 && f[0] == key {
				id, err1 := strconv.Atoi(f[2])
				gid, err2 := strconv.Atoi(f[3])
				if file == "etc/group" {
					gid, err2 = id, err1
				}
				if err1 == nil && err2 == nil {
					return id, gid, true
				}
			}
		}
		return 0, 0, false
	}
	uid, gid := 0, 0
	if n, err := strconv.Atoi(name); err == nil {
		uid = n
		if _, g, ok := lookup("etc/passwd", name); ok {
			gid = g
		} else {
			gid = n
		}
	} else if u, g, ok := lookup("etc/passwd", name); ok {
		uid, gid = u, g
	} else {
		return 0, 0, fmt.Errorf("OCI image user '%s' not found in /etc/passwd", name)
	}
	if group != "" {
		if n, err := strconv.Atoi(group); err == nil {
			gid = n
		} else if g, _, ok := lookup("etc/group", group); ok {
			gid = g
		} else {
			return 0, 0, fmt.Errorf("OCI image group '%s' not found in /etc/group", group)
		}
	}
	return uid, gid, nil
}

// uniqueTags is get_unique_tags: split, deduplicated, sorted, joined by ';'.
func uniqueTags(v string) string {
	seen := map[string]bool{}
	var out []string
	for _, t := range splitList(v) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return strings.Join(sortedKeys(seen), ";")
}

func (s *Server) tmpDir() string { return s.cfg.Dir + "/tmp" }

// ctSummary is a CT's row in the list and the base of status/current.
func (s *Server) ctSummary(c *ct) map[string]any {
	state, pid := s.ctState(c.vmid)
	s.mu.Lock()
	conf := copyConf(c.conf)
	started := c.started
	s.mu.Unlock()
	mem, _ := strconv.ParseInt(conf["memory"], 10, 64)
	swap, _ := strconv.ParseInt(conf["swap"], 10, 64)
	cpus := float64(len(cpuList()))
	if n, err := strconv.ParseFloat(conf["cores"], 64); err == nil && n > 0 && n < cpus {
		cpus = n
	}
	if cl, err := strconv.ParseFloat(conf["cpulimit"], 64); err == nil && cl > 0 && cl < cpus {
		cpus = cl
	}
	name := conf["hostname"]
	if name == "" {
		name = fmt.Sprintf("CT%d", c.vmid)
	}
	var maxdisk int64
	if mp, err := s.parseMP(conf["rootfs"]); err == nil {
		maxdisk = diskSize(mp)
	}
	out := map[string]any{
		"vmid": c.vmid, "name": name, "type": "lxc", "status": "stopped",
		"cpus": cpus, "cpu": 0, "maxmem": mem << 20, "mem": 0, "maxswap": swap << 20, "swap": 0,
		"maxdisk": maxdisk, "disk": 0, "uptime": 0, "netin": 0, "netout": 0,
		"diskread": 0, "diskwrite": 0,
	}
	if t := conf["tags"]; t != "" {
		out["tags"] = t
	}
	if l := conf["lock"]; l != "" {
		out["lock"] = l
	}
	if conf["template"] == "1" {
		out["template"] = 1
	}
	if state == "running" || state == "frozen" {
		out["status"] = "running"
		out["pid"] = pid
		if !started.IsZero() {
			out["uptime"] = int64(time.Since(started).Seconds())
		}
		out["mem"] = s.ctMemory(c.vmid)
	}
	return out
}

func (s *Server) lxcList(r *request) (any, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	cts := make([]*ct, 0, len(s.cts))
	for _, c := range s.cts {
		cts = append(cts, c)
	}
	s.mu.Unlock()
	out := []map[string]any{}
	for _, c := range cts {
		row := s.ctSummary(c)
		// the list gives vmid as a string, status/current as an integer
		row["vmid"] = strconv.Itoa(c.vmid)
		out = append(out, row)
	}
	return out, nil
}

func (s *Server) lxcDirIndex(r *request) (any, error) {
	if _, err := s.lookupCT(r); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, sub := range []string{"config", "pending", "status", "vncproxy", "termproxy", "vncwebsocket", "spiceproxy", "migrate", "clone", "rrd", "rrddata", "firewall", "snapshot", "resize", "interfaces"} {
		out = append(out, map[string]string{"subdir": sub})
	}
	return out, nil
}

func (s *Server) lxcConfigGet(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	conf, raw := copyConf(c.conf), append([][2]string(nil), c.lxc...)
	if name := r.str("snapshot"); name != "" {
		snap := c.snapshots[name]
		if snap == nil {
			s.mu.Unlock()
			return nil, errorf(http.StatusInternalServerError, "snapshot '%s' does not exist", name)
		}
		conf, raw = copyConf(snap.conf), append([][2]string(nil), snap.lxc...)
	}
	s.mu.Unlock()
	out := s.typedConf(conf)
	out["digest"] = confDigest(conf, raw)
	if len(raw) > 0 {
		pairs := make([][]string, len(raw))
		for i, kv := range raw {
			pairs[i] = []string{kv[0], kv[1]}
		}
		out["lxc"] = pairs
	}
	return out, nil
}

// hotKeys take effect on a running CT at once; the rest at its next start.
var hotKeys = map[string]bool{"memory": true, "swap": true, "cpulimit": true, "cpuunits": true, "cores": true}

func (s *Server) lxcConfigPut(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if err := s.checkLock(c); err != nil {
		return nil, err
	}
	s.mu.Lock()
	conf, raw := copyConf(c.conf), c.lxc
	s.mu.Unlock()
	if d := r.str("digest"); d != "" && d != confDigest(conf, raw) {
		return nil, errorf(http.StatusInternalServerError, "detected modified configuration - file changed by other user? Try again.")
	}
	var set []string
	for _, k := range sortedKeys(r.params) {
		switch k {
		case "node", "vmid", "digest", "delete", "revert":
			continue
		}
		set = append(set, k)
	}
	dels := splitList(r.str("delete"))
	if len(set) == 0 && len(dels) == 0 {
		return nil, errorf(http.StatusInternalServerError, "no options specified")
	}
	for _, k := range dels {
		if _, ok := r.params[k]; ok {
			return nil, paramError(map[string]string{"delete": fmt.Sprintf("cannot set and delete '%s' at the same time", k)})
		}
	}
	if err := s.checkModifyPerm(r, conf, set, conf["unprivileged"] == "1"); err != nil {
		return nil, err
	}
	newconf := copyConf(conf)
	for _, k := range dels {
		switch {
		case k == "memory" || k == "rootfs" || k == "ostype":
			return nil, errorf(http.StatusInternalServerError, "unable to delete required option '%s'", k)
		case k == "unprivileged":
			return nil, errorf(http.StatusInternalServerError, "unable to delete read-only option: '%s'", k)
		}
		delete(newconf, k)
	}
	for _, k := range set {
		v := r.str(k)
		switch {
		case k == "unprivileged":
			return nil, errorf(http.StatusInternalServerError, "unable to modify read-only option: '%s'", k)
		case k == "rootfs":
			old, _ := s.parseMP(conf["rootfs"])
			nw, err := s.parseMP(v)
			if err != nil || old["volume"] != nw["volume"] {
				return nil, errorf(http.StatusNotImplemented, "pvesim does not move or replace root disks")
			}
		case reMPKey.MatchString(k):
			return nil, errorf(http.StatusNotImplemented, "mount points (%s) are not implemented by pvesim", k)
		case k == "tags":
			v = uniqueTags(v)
		case k == "lock":
			// only root may set a lock; a token is refused by the schema's permission
			return nil, permError("only root can set 'lock' config")
		}
		newconf[k] = v
	}
	s.mu.Lock()
	c.conf = newconf
	s.mu.Unlock()
	if state, _ := s.ctState(c.vmid); state != "stopped" {
		s.applyHot(c.vmid, newconf, set, dels)
	}
	return nil, nil
}
