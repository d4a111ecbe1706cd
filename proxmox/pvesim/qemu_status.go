package pvesim

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// This file serves /nodes/{node}/qemu/{vmid}/status: current, start, stop, shutdown,
// suspend, resume. As in qemu-server, start of a running VM fails in its task, stop of a
// stopped VM is a task that has nothing to do, and suspend/resume of a VM that does not
// run are refused at once.

func (s *Server) routesQemuStatus() {
	s.route("GET", "/nodes/{node}/qemu/{vmid}/status", s.qemuStatusIndex)
	s.route("GET", "/nodes/{node}/qemu/{vmid}/status/current", s.qemuStatusCurrent)
	s.route("POST", "/nodes/{node}/qemu/{vmid}/status/start", s.qemuStart)
	s.route("POST", "/nodes/{node}/qemu/{vmid}/status/stop", s.qemuStop)
	s.route("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown", s.qemuShutdown)
	s.route("POST", "/nodes/{node}/qemu/{vmid}/status/suspend", s.qemuSuspend)
	s.route("POST", "/nodes/{node}/qemu/{vmid}/status/resume", s.qemuResume)
}

func (s *Server) qemuStatusIndex(r *request) (any, error) {
	if _, err := s.lookupVM(r); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, sub := range []string{"current", "start", "stop", "reset", "shutdown", "reboot", "suspend", "resume"} {
		out = append(out, map[string]string{"subcmd": sub})
	}
	return out, nil
}

func (s *Server) qemuStatusCurrent(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	st := s.vmSummary(v)
	st["ha"] = map[string]any{"managed": 0}
	if st["status"] == "running" {
		st["running-machine"] = "pc-i440fx-9.2+pve1"
		st["running-qemu"] = "9.2.0"
	}
	return st, nil
}

// vmGuest is the VM's running (or suspended) guest, nil when it is stopped.
func (s *Server) vmGuest(v *vm) *guest {
	s.mu.Lock()
	g := v.guest
	s.mu.Unlock()
	if g == nil {
		return nil
	}
	if st, _ := g.state(); st == "stopped" {
		return nil
	}
	return g
}

func (s *Server) vmRunning(v *vm) bool { return s.vmGuest(v) != nil }

// reapGuest forgets a guest that stopped by itself (powered off inside), removing its
// LXC directory and cgroups.
func (s *Server) reapGuest(v *vm) {
	s.mu.Lock()
	g := v.guest
	s.mu.Unlock()
	if g == nil {
		return
	}
	if st, _ := g.state(); st != "stopped" {
		return
	}
	g.destroy()
	s.mu.Lock()
	if v.guest == g {
		v.guest = nil
	}
	s.mu.Unlock()
}

func (s *Server) qemuStart(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	if err := checkSkiplock(r); err != nil {
		return nil, err
	}
	for _, k := range []string{"migratedfrom", "stateuri", "targetstorage", "migration_type", "migration_network"} {
		if r.has(k) {
			return nil, errorf(http.StatusNotImplemented, "'%s' (migration) is not implemented by pvesim", k)
		}
	}
	return s.startTask(r, "qmstart", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		v.op.Lock()
		defer v.op.Unlock()
		if s.vmGet(v, "template") == "1" {
			return fmt.Errorf("you can't start a vm if it's a template")
		}
		if err := s.vmCheckLock(v); err != nil {
			return err
		}
		s.reapGuest(v)
		if s.vmRunning(v) {
			return fmt.Errorf("VM %d already running", v.vmid)
		}
		g, err := s.startGuest(ctx, t, v)
		if err != nil {
			return err
		}
		s.mu.Lock()
		v.guest = g
		s.mu.Unlock()
		return nil
	}), nil
}

// stopVM kills a VM's guest (or powers it down within timeout) and forgets it.
func (s *Server) stopVM(v *vm, timeout time.Duration, force bool) error {
	s.mu.Lock()
	g := v.guest
	s.mu.Unlock()
	if g == nil {
		return nil
	}
	if err := g.stop(timeout, force); err != nil {
		return err
	}
	if err := g.destroy(); err != nil {
		return err
	}
	s.mu.Lock()
	if v.guest == g {
		v.guest = nil
	}
	s.mu.Unlock()
	return nil
}

func (s *Server) qemuStop(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	if err := checkSkiplock(r); err != nil {
		return nil, err
	}
	if r.has("migratedfrom") {
		return nil, errorf(http.StatusNotImplemented, "'migratedfrom' (migration) is not implemented by pvesim")
	}
	return s.startTask(r, "qmstop", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		v.op.Lock()
		defer v.op.Unlock()
		if err := s.vmCheckLock(v); err != nil {
			return err
		}
		return s.stopVM(v, 0, true)
	}), nil
}

func (s *Server) qemuShutdown(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	if err := checkSkiplock(r); err != nil {
		return nil, err
	}
	timeout := time.Duration(r.intOr("timeout", 60)) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	force := r.boolOr("forceStop", false)
	return s.startTask(r, "qmshutdown", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		v.op.Lock()
		defer v.op.Unlock()
		if err := s.vmCheckLock(v); err != nil {
			return err
		}
		s.reapGuest(v)
		if !s.vmRunning(v) {
			return nil
		}
		return s.stopVM(v, timeout, force)
	}), nil
}

func (s *Server) qemuSuspend(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	if err := checkSkiplock(r); err != nil {
		return nil, err
	}
	if r.boolOr("todisk", false) {
		return nil, errorf(http.StatusNotImplemented, "suspend to disk (hibernation) is not implemented by pvesim")
	}
	if !s.vmRunning(v) {
		return nil, errorf(http.StatusInternalServerError, "VM %d not running", v.vmid)
	}
	return s.startTask(r, "qmsuspend", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		v.op.Lock()
		defer v.op.Unlock()
		if err := s.vmCheckLock(v); err != nil {
			return err
		}
		g := s.vmGuest(v)
		if g == nil {
			return fmt.Errorf("VM %d not running", v.vmid)
		}
		return g.freeze()
	}), nil
}

func (s *Server) qemuResume(r *request) (any, error) {
	v, err := s.nodeVM(r)
	if err != nil {
		return nil, err
	}
	if err := checkSkiplock(r); err != nil {
		return nil, err
	}
	if !s.vmRunning(v) {
		return nil, errorf(http.StatusInternalServerError, "VM %d not running", v.vmid)
	}
	return s.startTask(r, "qmresume", strconv.Itoa(v.vmid), func(ctx context.Context, t *task) error {
		v.op.Lock()
		defer v.op.Unlock()
		g := s.vmGuest(v)
		if g == nil {
			return fmt.Errorf("VM %d not running", v.vmid)
		}
		if st, _ := g.state(); st != "frozen" {
			// resuming a running VM is a no-op for QEMU's 'cont'
			return nil
		}
		return g.thaw()
	}), nil
}
