package pvesim

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/lxc/go-lxc"
)

// This file serves /nodes/{node}/lxc/{vmid}/status: current, start, stop, shutdown,
// suspend, resume. As in pve-container, the state checks ("already running", "not
// running") answer synchronously with 500; the change itself is a task.

func (s *Server) routesLXCStatus() {
	s.route("GET", "/nodes/{node}/lxc/{vmid}/status", s.lxcStatusIndex)
	s.route("GET", "/nodes/{node}/lxc/{vmid}/status/current", s.lxcStatusCurrent)
	s.route("POST", "/nodes/{node}/lxc/{vmid}/status/start", s.lxcStart)
	s.route("POST", "/nodes/{node}/lxc/{vmid}/status/stop", s.lxcStop)
	s.route("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown", s.lxcShutdown)
	s.route("POST", "/nodes/{node}/lxc/{vmid}/status/suspend", s.lxcSuspend)
	s.route("POST", "/nodes/{node}/lxc/{vmid}/status/resume", s.lxcResume)
}

func cpuList() []int {
	out := make([]int, runtime.NumCPU())
	for i := range out {
		out[i] = i
	}
	return out
}

func (s *Server) ctMemory(vmid int) int64 {
	lc, err := s.lxcContainer(vmid)
	if err != nil {
		return 0
	}
	defer lxc.Release(lc)
	m, err := lc.MemoryUsage()
	if err != nil {
		return 0
	}
	return int64(m)
}

func (s *Server) lxcStatusIndex(r *request) (any, error) {
	if _, err := s.lookupCT(r); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, sub := range []string{"current", "start", "stop", "shutdown", "reboot", "suspend", "resume"} {
		out = append(out, map[string]string{"subcmd": sub})
	}
	return out, nil
}

func (s *Server) lxcStatusCurrent(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	st := s.ctSummary(c)
	st["ha"] = map[string]any{"managed": 0}
	return st, nil
}

func (s *Server) running(c *ct) bool {
	state, _ := s.ctState(c.vmid)
	return state != "stopped"
}

// skiplock is root@pam's only; a token is refused as PVE refuses it.
func checkSkiplock(r *request) error {
	if r.has("skiplock") && r.user != "root@pam" {
		return paramError(map[string]string{"skiplock": "Only root may use this option."})
	}
	return nil
}

func (s *Server) lxcStart(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	if err := checkSkiplock(r); err != nil {
		return nil, err
	}
	if s.running(c) {
		return nil, errorf(http.StatusInternalServerError, "CT %d already running", c.vmid)
	}
	if s.ctGet(c, "template") == "1" {
		return nil, errorf(http.StatusInternalServerError, "CT %d is a template - unable to start", c.vmid)
	}
	return s.startTask(r, "vzstart", strconv.Itoa(c.vmid), func(ctx context.Context, t *task) error {
		c.op.Lock()
		defer c.op.Unlock()
		if err := s.checkLock(c); err != nil {
			return err
		}
		if s.running(c) {
			return fmt.Errorf("CT %d already running", c.vmid)
		}
		return s.startLXC(ctx, t, c)
	}), nil
}

func (s *Server) lxcStop(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	if err := checkSkiplock(r); err != nil {
		return nil, err
	}
	if !s.running(c) {
		return nil, errorf(http.StatusInternalServerError, "CT %d not running", c.vmid)
	}
	return s.startTask(r, "vzstop", strconv.Itoa(c.vmid), func(ctx context.Context, t *task) error {
		c.op.Lock()
		defer c.op.Unlock()
		if err := s.checkLock(c); err != nil {
			return err
		}
		return s.stopLXC(ctx, c.vmid, 0, true)
	}), nil
}

func (s *Server) lxcShutdown(r *request) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	if !s.running(c) {
		return nil, errorf(http.StatusInternalServerError, "CT %d not running", c.vmid)
	}
	timeout := time.Duration(r.intOr("timeout", 60)) * time.Second
	force := r.boolOr("forceStop", false)
	return s.startTask(r, "vzshutdown", strconv.Itoa(c.vmid), func(ctx context.Context, t *task) error {
		c.op.Lock()
		defer c.op.Unlock()
		if err := s.checkLock(c); err != nil {
			return err
		}
		if timeout <= 0 {
			timeout = time.Second
		}
		return s.stopLXC(ctx, c.vmid, timeout, force)
	}), nil
}

// suspend freezes the CT's processes (PVE checkpoints it with CRIU, which this host
// cannot run); resume thaws them.
func (s *Server) lxcSuspend(r *request) (any, error) {
	return s.freezeOp(r, "vzsuspend", true)
}

func (s *Server) lxcResume(r *request) (any, error) {
	return s.freezeOp(r, "vzresume", false)
}

func (s *Server) freezeOp(r *request, typ string, freeze bool) (any, error) {
	c, err := s.nodeCT(r)
	if err != nil {
		return nil, err
	}
	if !s.running(c) {
		return nil, errorf(http.StatusInternalServerError, "CT %d not running", c.vmid)
	}
	return s.startTask(r, typ, strconv.Itoa(c.vmid), func(ctx context.Context, t *task) error {
		c.op.Lock()
		defer c.op.Unlock()
		if err := s.checkLock(c); err != nil {
			return err
		}
		lc, err := s.lxcContainer(c.vmid)
		if err != nil {
			return err
		}
		defer lxc.Release(lc)
		if freeze {
			return lc.Freeze()
		}
		return lc.Unfreeze()
	}), nil
}

// applyHot changes a running CT's cgroup limits after a config change, as PVE
// hot-applies memory, swap and CPU limits.
func (s *Server) applyHot(vmid int, conf map[string]string, set, dels []string) {
	changed := false
	for _, k := range append(append([]string(nil), set...), dels...) {
		if hotKeys[k] {
			changed = true
		}
	}
	if !changed {
		return
	}
	lc, err := s.lxcContainer(vmid)
	if err != nil {
		return
	}
	defer lxc.Release(lc)
	mem, _ := strconv.ParseInt(conf["memory"], 10, 64)
	swap, _ := strconv.ParseInt(conf["swap"], 10, 64)
	if cgroupV2() {
		lc.SetCgroupItem("memory.max", strconv.FormatInt(mem<<20, 10))
		lc.SetCgroupItem("memory.swap.max", strconv.FormatInt(swap<<20, 10))
		return
	}
	// memsw must stay >= the memory limit: raise in the order that keeps it so
	memB, allB := strconv.FormatInt(mem<<20, 10), strconv.FormatInt((mem+swap)<<20, 10)
	if memswAvailable() {
		lc.SetCgroupItem("memory.memsw.limit_in_bytes", allB)
		lc.SetCgroupItem("memory.limit_in_bytes", memB)
		lc.SetCgroupItem("memory.memsw.limit_in_bytes", allB)
	} else {
		lc.SetCgroupItem("memory.limit_in_bytes", memB)
	}
	if cl, err := strconv.ParseFloat(conf["cpulimit"], 64); err == nil && cl > 0 {
		lc.SetCgroupItem("cpu.cfs_quota_us", strconv.FormatInt(int64(cl*100000), 10))
	}
}
