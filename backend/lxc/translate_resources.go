package lxc

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func (t *translator) cgroups() error {
	p := t.spec.Linux.CgroupsPath
	if p == "" {
		p = path.Join("/lxcri", t.o.Namespace, t.o.Name)
	}
	if strings.Contains(p, ":") {
		return fieldErr("linux.cgroupsPath", "%q is a systemd cgroup path (slice:prefix:name); the lxc backend takes cgroupfs paths", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fieldErr("linux.cgroupsPath", "%q leaves the cgroup root", p)
		}
	}
	clean := strings.TrimPrefix(path.Clean("/"+p), "/")
	if clean == "" {
		return fieldErr("linux.cgroupsPath", "%q is the root cgroup", p)
	}
	if strings.ContainsAny(clean, " \t") {
		return fieldErr("linux.cgroupsPath", "invalid cgroup path %q", p)
	}
	t.r.CgroupPath = clean
	t.r.MonitorCgroupPath = MonitorCgroupRoot + "/" + monitorName(t.o.Namespace, t.o.Name)
	t.r.MonitorPivotPath = MonitorCgroupRoot
	if err := t.add("linux.cgroupsPath", "lxc.cgroup.dir.container", clean); err != nil {
		return err
	}
	if err := t.add("(name)", "lxc.cgroup.dir.monitor", t.r.MonitorCgroupPath); err != nil {
		return err
	}
	if err := t.add("(name)", "lxc.cgroup.dir.monitor.pivot", t.r.MonitorPivotPath); err != nil {
		return err
	}
	if t.o.Helper == "" || t.o.Dir == "" {
		return nil
	}
	// liblxc removes the container's cgroup as soon as the init died; the stop hook runs
	// just before that and keeps the OOM kill count for the init's exit (TaskOOM before
	// TaskExit, even when the kill and the removal beat the shim's watch).
	t.r.OOMCountFile = filepath.Join(t.o.Dir, oomCountFile)
	return t.addHook("(oom)", "stop", "oom-count", t.o.Cgroup.oomCounters(clean), t.r.OOMCountFile)
}

// cg adds a cgroup setting for controller's file, on whichever hierarchy holds the
// controller.
func (t *translator) cg(field, controller, file, value string) error {
	key := "lxc.cgroup." + controller + "." + file
	if t.o.Cgroup.v2(controller) {
		key = "lxc.cgroup2." + controller + "." + file
	}
	return t.add(field, key, value)
}

var pageSizeRe = regexp.MustCompile(`^[0-9]+[KMGTP]?B$`)

// monitorName is the monitor's cgroup under MonitorCgroupRoot. namespace and name are
// containerd identifiers (checked by checkNames): runs of letters and digits joined by
// single '.', '_' or '-', so "--" occurs in neither and the name is the pair's alone.
func monitorName(namespace, name string) string {
	return namespace + "--" + name
}

func (t *translator) resources() error {
	r := t.spec.Linux.Resources
	if r == nil {
		// No resources: no devices either, which means runc's defaults.
		r = &specs.LinuxResources{}
	}
	steps := []func(*specs.LinuxResources) error{
		t.deviceRules, t.memory, t.cpu, t.pids, t.blockIO, t.hugepages, t.network, t.rdma, t.unified,
	}
	for _, s := range steps {
		if err := s(r); err != nil {
			return err
		}
	}
	return nil
}

// defaultDeviceRules are the devices every container may use, appended after the spec's
// rules as runc and crun do (runc: libcontainer/specconv AllowedDevices): creating any
// device node, and the standard devices /dev/null, random, full, tty, zero, urandom,
// the pty devices and /dev/net/tun.
var defaultDeviceRules = []string{
	"c *:* m", "b *:* m",
	"c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm", "c 1:9 rwm",
	"c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm",
}

func (t *translator) deviceRules(r *specs.LinuxResources) error {
	for i, d := range r.Devices {
		f := fmt.Sprintf("linux.resources.devices[%d]", i)
		rule, err := deviceRule(f, d)
		if err != nil {
			return err
		}
		file := "deny"
		if d.Allow {
			file = "allow"
		}
		if err := t.cg(f, "devices", file, rule); err != nil {
			return err
		}
	}
	if len(r.Devices) == 0 {
		// No rules at all is runc's deny-all plus the default allowlist, not liblxc's
		// allow-all.
		if err := t.cg("linux.resources.devices", "devices", "deny", "a"); err != nil {
			return err
		}
	}
	for _, rule := range defaultDeviceRules {
		if err := t.cg("linux.resources.devices", "devices", "allow", rule); err != nil {
			return err
		}
	}
	return nil
}

func deviceRule(f string, d specs.LinuxDeviceCgroup) (string, error) {
	typ := d.Type
	switch typ {
	case "", "a":
		typ = "a"
	case "c", "b":
	default:
		return "", fieldErr(f+".type", "unknown device type %q", d.Type)
	}
	access := d.Access
	if access == "" {
		access = "rwm"
	}
	for _, c := range access {
		if !strings.ContainsRune("rwm", c) {
			return "", fieldErr(f+".access", "invalid access %q", d.Access)
		}
	}
	num := func(p *int64, what string) (string, error) {
		if p == nil || *p == -1 {
			return "*", nil
		}
		if *p < 0 {
			return "", fieldErr(f+"."+what, "invalid device number %d", *p)
		}
		return strconv.FormatInt(*p, 10), nil
	}
	maj, err := num(d.Major, "major")
	if err != nil {
		return "", err
	}
	min, err := num(d.Minor, "minor")
	if err != nil {
		return "", err
	}
	if typ == "a" && maj == "*" && min == "*" && access == "rwm" {
		return "a", nil
	}
	return fmt.Sprintf("%s %s:%s %s", typ, maj, min, access), nil
}

func limitV2(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

func (t *translator) memory(r *specs.LinuxResources) error {
	m := r.Memory
	if m == nil {
		return nil
	}
	const f = "linux.resources.memory"
	v2 := t.o.Cgroup.v2("memory")
	if m.Kernel != nil {
		return fieldErr(f+".kernel", "kernel memory limits are not supported by this kernel")
	}
	if !v2 {
		if m.Limit != nil {
			if err := t.cg(f+".limit", "memory", "limit_in_bytes", formatInt(*m.Limit)); err != nil {
				return err
			}
		}
		if m.Reservation != nil {
			if err := t.cg(f+".reservation", "memory", "soft_limit_in_bytes", formatInt(*m.Reservation)); err != nil {
				return err
			}
		}
		if m.Swap != nil {
			if m.Limit != nil && *m.Swap >= 0 && *m.Limit >= 0 && *m.Swap < *m.Limit {
				return fieldErr(f+".swap", "memory+swap limit %d is below the memory limit %d", *m.Swap, *m.Limit)
			}
			if err := t.cg(f+".swap", "memory", "memsw.limit_in_bytes", formatInt(*m.Swap)); err != nil {
				return err
			}
		}
		if m.KernelTCP != nil {
			if err := t.cg(f+".kernelTCP", "memory", "kmem.tcp.limit_in_bytes", formatInt(*m.KernelTCP)); err != nil {
				return err
			}
		}
		if m.Swappiness != nil {
			if *m.Swappiness > 100 {
				return fieldErr(f+".swappiness", "%d is above 100", *m.Swappiness)
			}
			if err := t.cg(f+".swappiness", "memory", "swappiness", strconv.FormatUint(*m.Swappiness, 10)); err != nil {
				return err
			}
		}
		if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
			if err := t.cg(f+".disableOOMKiller", "memory", "oom_control", "1"); err != nil {
				return err
			}
		}
		if m.UseHierarchy != nil && !*m.UseHierarchy {
			return fieldErr(f+".useHierarchy", "this kernel's memory cgroup is always hierarchical")
		}
		return nil
	}
	// cgroup v2
	switch {
	case m.KernelTCP != nil:
		return fieldErr(f+".kernelTCP", "not available on cgroup v2")
	case m.Swappiness != nil:
		return fieldErr(f+".swappiness", "not available on cgroup v2")
	case m.DisableOOMKiller != nil && *m.DisableOOMKiller:
		return fieldErr(f+".disableOOMKiller", "the OOM killer cannot be disabled on cgroup v2")
	case m.UseHierarchy != nil && !*m.UseHierarchy:
		return fieldErr(f+".useHierarchy", "cgroup v2 is always hierarchical")
	}
	var limit int64
	if m.Limit != nil {
		limit = *m.Limit
		if err := t.cg(f+".limit", "memory", "max", limitV2(limit)); err != nil {
			return err
		}
	}
	if m.Reservation != nil {
		if err := t.cg(f+".reservation", "memory", "low", limitV2(*m.Reservation)); err != nil {
			return err
		}
	}
	if m.Swap != nil {
		// OCI's swap is memory+swap; cgroup v2's swap.max is swap alone (runc's conversion).
		swap := *m.Swap
		var v string
		switch {
		case limit == -1 && swap == 0:
			v = "max"
		case swap == -1:
			v = "max"
		case swap == 0:
			v = ""
		case limit <= 0:
			return fieldErr(f+".swap", "a swap limit needs a memory limit")
		case swap < limit:
			return fieldErr(f+".swap", "memory+swap limit %d is below the memory limit %d", swap, limit)
		default:
			v = strconv.FormatInt(swap-limit, 10)
		}
		if v != "" {
			if err := t.cg(f+".swap", "memory", "swap.max", v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *translator) cpu(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	const f = "linux.resources.cpu"
	if !t.o.Cgroup.v2("cpu") {
		if c.Shares != nil && *c.Shares != 0 {
			if err := t.cg(f+".shares", "cpu", "shares", strconv.FormatUint(*c.Shares, 10)); err != nil {
				return err
			}
		}
		if c.Period != nil && *c.Period != 0 {
			if err := t.cg(f+".period", "cpu", "cfs_period_us", strconv.FormatUint(*c.Period, 10)); err != nil {
				return err
			}
		}
		if c.Quota != nil && *c.Quota != 0 {
			if err := t.cg(f+".quota", "cpu", "cfs_quota_us", formatInt(*c.Quota)); err != nil {
				return err
			}
		}
		if c.Burst != nil {
			if err := t.cg(f+".burst", "cpu", "cfs_burst_us", strconv.FormatUint(*c.Burst, 10)); err != nil {
				return err
			}
		}
		if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
			if err := t.cg(f+".realtimePeriod", "cpu", "rt_period_us", strconv.FormatUint(*c.RealtimePeriod, 10)); err != nil {
				return err
			}
		}
		if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
			if err := t.cg(f+".realtimeRuntime", "cpu", "rt_runtime_us", formatInt(*c.RealtimeRuntime)); err != nil {
				return err
			}
		}
	} else {
		if c.RealtimePeriod != nil || c.RealtimeRuntime != nil {
			return fieldErr(f+".realtimeRuntime", "real-time CPU scheduling limits are not available on cgroup v2")
		}
		if c.Shares != nil && *c.Shares != 0 {
			s := *c.Shares
			if s < 2 {
				s = 2
			}
			if s > 262144 {
				s = 262144
			}
			weight := 1 + ((s-2)*9999)/262142
			if err := t.cg(f+".shares", "cpu", "weight", strconv.FormatUint(weight, 10)); err != nil {
				return err
			}
		}
		if (c.Quota != nil && *c.Quota != 0) || (c.Period != nil && *c.Period != 0) {
			quota := "max"
			if c.Quota != nil && *c.Quota > 0 {
				quota = formatInt(*c.Quota)
			}
			v := quota
			if c.Period != nil && *c.Period != 0 {
				v += " " + strconv.FormatUint(*c.Period, 10)
			}
			if err := t.cg(f+".quota", "cpu", "max", v); err != nil {
				return err
			}
		}
		if c.Burst != nil {
			if err := t.cg(f+".burst", "cpu", "max.burst", strconv.FormatUint(*c.Burst, 10)); err != nil {
				return err
			}
		}
	}
	if c.Idle != nil {
		if err := t.cg(f+".idle", "cpu", "idle", formatInt(*c.Idle)); err != nil {
			return err
		}
	}
	if c.Cpus != "" {
		if err := t.cg(f+".cpus", "cpuset", "cpus", c.Cpus); err != nil {
			return err
		}
	}
	if c.Mems != "" {
		if err := t.cg(f+".mems", "cpuset", "mems", c.Mems); err != nil {
			return err
		}
	}
	return nil
}

func (t *translator) pids(r *specs.LinuxResources) error {
	if r.Pids == nil || r.Pids.Limit == nil {
		return nil
	}
	l := *r.Pids.Limit
	switch {
	case l > 0:
		return t.cg("linux.resources.pids.limit", "pids", "max", formatInt(l))
	case l < 0:
		return t.cg("linux.resources.pids.limit", "pids", "max", "max")
	}
	return nil
}

func (t *translator) blockIO(r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	const f = "linux.resources.blockIO"
	v2 := t.o.Cgroup.v2("io") || t.o.Cgroup.Unified
	if b.LeafWeight != nil {
		return fieldErr(f+".leafWeight", "leaf weights are not supported by this kernel")
	}
	checkWeight := func(field string, w uint16) error {
		if w < 10 || w > 1000 {
			return fieldErr(field, "weight %d is outside 10..1000", w)
		}
		return nil
	}
	ioWeight := func(w uint16) uint64 { return 1 + (uint64(w)-10)*9999/990 }
	if b.Weight != nil && *b.Weight != 0 {
		if err := checkWeight(f+".weight", *b.Weight); err != nil {
			return err
		}
		var err error
		if v2 {
			err = t.add(f+".weight", "lxc.cgroup2.io.weight", "default "+strconv.FormatUint(ioWeight(*b.Weight), 10))
		} else {
			err = t.cg(f+".weight", "blkio", "bfq.weight", strconv.FormatUint(uint64(*b.Weight), 10))
		}
		if err != nil {
			return err
		}
	}
	for i, d := range b.WeightDevice {
		df := fmt.Sprintf("%s.weightDevice[%d]", f, i)
		if d.LeafWeight != nil {
			return fieldErr(df+".leafWeight", "leaf weights are not supported by this kernel")
		}
		if d.Weight == nil {
			continue
		}
		if err := checkWeight(df+".weight", *d.Weight); err != nil {
			return err
		}
		if d.Major < 0 || d.Minor < 0 {
			return fieldErr(df+".major", "invalid device %d:%d", d.Major, d.Minor)
		}
		var err error
		if v2 {
			err = t.add(df, "lxc.cgroup2.io.weight", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, ioWeight(*d.Weight)))
		} else {
			err = t.cg(df, "blkio", "bfq.weight_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight))
		}
		if err != nil {
			return err
		}
	}
	throttles := []struct {
		name   string
		devs   []specs.LinuxThrottleDevice
		v1, v2 string
	}{
		{"throttleReadBpsDevice", b.ThrottleReadBpsDevice, "throttle.read_bps_device", "rbps"},
		{"throttleWriteBpsDevice", b.ThrottleWriteBpsDevice, "throttle.write_bps_device", "wbps"},
		{"throttleReadIOPSDevice", b.ThrottleReadIOPSDevice, "throttle.read_iops_device", "riops"},
		{"throttleWriteIOPSDevice", b.ThrottleWriteIOPSDevice, "throttle.write_iops_device", "wiops"},
	}
	for _, th := range throttles {
		for i, d := range th.devs {
			df := fmt.Sprintf("%s.%s[%d]", f, th.name, i)
			if d.Major < 0 || d.Minor < 0 {
				return fieldErr(df+".major", "invalid device %d:%d", d.Major, d.Minor)
			}
			var err error
			if v2 {
				rate := strconv.FormatUint(d.Rate, 10)
				if d.Rate == 0 {
					rate = "max"
				}
				err = t.add(df, "lxc.cgroup2.io.max", fmt.Sprintf("%d:%d %s=%s", d.Major, d.Minor, th.v2, rate))
			} else {
				err = t.cg(df, "blkio", th.v1, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate))
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *translator) hugepages(r *specs.LinuxResources) error {
	for i, h := range r.HugepageLimits {
		f := fmt.Sprintf("linux.resources.hugepageLimits[%d]", i)
		if !pageSizeRe.MatchString(h.Pagesize) {
			return fieldErr(f+".pageSize", "invalid page size %q", h.Pagesize)
		}
		file := h.Pagesize + ".limit_in_bytes"
		if t.o.Cgroup.v2("hugetlb") {
			file = h.Pagesize + ".max"
		}
		if err := t.cg(f+".limit", "hugetlb", file, strconv.FormatUint(h.Limit, 10)); err != nil {
			return err
		}
	}
	return nil
}

func (t *translator) network(r *specs.LinuxResources) error {
	n := r.Network
	if n == nil {
		return nil
	}
	const f = "linux.resources.network"
	if t.o.Cgroup.Unified {
		return fieldErr(f, "net_cls and net_prio are not available on cgroup v2")
	}
	if n.ClassID != nil {
		if err := t.cg(f+".classID", "net_cls", "classid", strconv.FormatUint(uint64(*n.ClassID), 10)); err != nil {
			return err
		}
	}
	for i, p := range n.Priorities {
		pf := fmt.Sprintf("%s.priorities[%d]", f, i)
		if p.Name == "" || strings.ContainsAny(p.Name, " \t\n\x00") {
			return fieldErr(pf+".name", "invalid interface name %q", p.Name)
		}
		if err := t.cg(pf, "net_prio", "ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority)); err != nil {
			return err
		}
	}
	return nil
}

func (t *translator) rdma(r *specs.LinuxResources) error {
	for _, dev := range sortedKeys(r.Rdma) {
		l := r.Rdma[dev]
		f := keyField("linux.resources.rdma", dev)
		if dev == "" || strings.ContainsAny(dev, " \t\n\x00=") {
			return fieldErr(f, "invalid device name %q", dev)
		}
		v := dev
		if l.HcaHandles != nil {
			v += fmt.Sprintf(" hca_handle=%d", *l.HcaHandles)
		}
		if l.HcaObjects != nil {
			v += fmt.Sprintf(" hca_object=%d", *l.HcaObjects)
		}
		if v == dev {
			continue
		}
		if err := t.cg(f, "rdma", "max", v); err != nil {
			return err
		}
	}
	return nil
}

var unifiedKeyRe = regexp.MustCompile(`^([a-z_]+)\.[A-Za-z0-9_.]+$`)

func (t *translator) unified(r *specs.LinuxResources) error {
	for _, k := range sortedKeys(r.Unified) {
		f := keyField("linux.resources.unified", k)
		m := unifiedKeyRe.FindStringSubmatch(k)
		if m == nil || strings.HasPrefix(k, "cgroup.") {
			return fieldErr(f, "%q is not a cgroup v2 controller file LXC can set", k)
		}
		if m[1] == "devices" {
			// cgroup v2 has no devices files: liblxc would take the key for a device
			// rule of its own, past linux.resources.devices.
			return fieldErr(f, "%q is not a cgroup v2 file; device rules belong in linux.resources.devices", k)
		}
		if !t.o.Cgroup.v2(m[1]) {
			return fieldErr(f, "controller %q is not on the cgroup v2 hierarchy of this host", m[1])
		}
		if err := t.add(f, "lxc.cgroup2."+k, r.Unified[k]); err != nil {
			return err
		}
	}
	return nil
}
