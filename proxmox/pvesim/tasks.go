package pvesim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// task is one PVE worker task: it runs in the background, logs lines and ends "OK",
// "WARNINGS: n" or with an error, as tasks forked by PVE's RPCEnvironment::fork_worker.
type task struct {
	upid      string
	node      string
	pid       uint32
	pstart    uint32
	starttime int64
	typ       string
	id        string
	user      string

	mu       sync.Mutex
	log      []string
	warnings int
	running  bool
	exit     string
	endtime  int64
	done     chan struct{}
}

func (t *task) logf(format string, a ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSuffix(fmt.Sprintf(format, a...), "\n"), "\n") {
		t.log = append(t.log, line)
	}
}

// warn logs a warning the task's exit status counts, as PVE's log_warn.
func (t *task) warn(format string, a ...any) {
	t.logf("WARN: "+format, a...)
	t.mu.Lock()
	t.warnings++
	t.mu.Unlock()
}

// upidFormat is PVE::Tools::upid_encode, trailing colon included.
func upidString(node string, pid, pstart uint32, start int64, typ, id, user string) string {
	return fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", node, pid, pstart, uint32(start), typ, id, user)
}

var reUPID = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$`)

// taskFn is a task's work; its error ends the task with that error as exit status.
type taskFn func(ctx context.Context, t *task) error

// startTask forks a worker task and returns its UPID, which the API call answers at once.
// A task fault chosen for the request makes the task fail without doing its work, or run
// until the server closes; undo then reverts what the API call did before forking (the
// config a create registered), as a failing PVE worker leaves no half-made guest.
func (s *Server) startTask(r *request, typ, id string, fn taskFn, undo ...func()) string {
	s.mu.Lock()
	s.taskSeq++
	pid := uint32(os.Getpid())<<8 + s.taskSeq
	now := time.Now()
	t := &task{
		node: s.cfg.Node, pid: pid, pstart: uint32(now.Sub(s.started)/(10*time.Millisecond)) + 1,
		starttime: now.Unix(), typ: typ, id: id, user: r.user, running: true, done: make(chan struct{}),
	}
	t.upid = upidString(t.node, t.pid, t.pstart, t.starttime, typ, id, t.user)
	s.taskList = append(s.taskList, t)
	s.taskByID[t.upid] = t
	s.mu.Unlock()
	s.logf("task %s started", t.upid)

	fault := r.fault
	s.tasks.Add(1)
	go func() {
		defer s.tasks.Done()
		var err error
		switch {
		case fault != nil && fault.Kind == FaultTaskFail:
			msg := fault.Message
			if msg == "" {
				msg = "injected task failure"
			}
			err = errors.New(msg)
		case fault != nil && fault.Kind == FaultTaskHang:
			<-s.ctx.Done()
			err = errors.New("interrupted by signal")
		default:
			err = runTask(s.ctx, t, fn)
		}
		if fault != nil {
			for _, u := range undo {
				u()
			}
		}
		s.finishTask(t, err)
	}()
	return t.upid
}

func runTask(ctx context.Context, t *task, fn taskFn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error: %v", p)
		}
	}()
	return fn(ctx, t)
}

func (s *Server) finishTask(t *task, err error) {
	t.mu.Lock()
	switch {
	case err != nil:
		msg := strings.TrimSuffix(err.Error(), "\n")
		t.exit = msg
		t.log = append(t.log, "TASK ERROR: "+msg)
	case t.warnings > 0:
		t.exit = fmt.Sprintf("WARNINGS: %d", t.warnings)
		t.log = append(t.log, "TASK "+t.exit)
	default:
		t.exit = "OK"
		t.log = append(t.log, "TASK OK")
	}
	t.running = false
	t.endtime = time.Now().Unix()
	close(t.done)
	exit := t.exit
	t.mu.Unlock()
	s.logf("task %s: %s", t.upid, exit)
}

// Task looks a task up by UPID.
func (s *Server) task(upid string) (*task, error) {
	if !reUPID.MatchString(upid) {
		return nil, errorf(http.StatusInternalServerError, "unable to parse worker upid '%s'", upid)
	}
	s.mu.Lock()
	t := s.taskByID[upid]
	s.mu.Unlock()
	if t == nil {
		return nil, paramError(map[string]string{"upid": "no such task"})
	}
	return t, nil
}

// WaitTask waits for a task to end and returns its exit status (tests).
func (s *Server) WaitTask(ctx context.Context, upid string) (string, error) {
	t, err := s.task(upid)
	if err != nil {
		return "", err
	}
	select {
	case <-t.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exit, nil
}

func (s *Server) routesTasks() {
	s.route("GET", "/nodes/{node}/tasks/{upid}/status", s.taskStatus)
	s.route("GET", "/nodes/{node}/tasks/{upid}/log", s.taskLog)
	s.route("GET", "/nodes/{node}/tasks", s.taskIndex)
}

func (t *task) status() map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := map[string]any{
		"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime,
		"type": t.typ, "id": t.id, "user": t.user, "status": "running",
	}
	if !t.running {
		st["status"] = "stopped"
		st["exitstatus"] = t.exit
	}
	return st
}

func (s *Server) taskStatus(r *request) (any, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	t, err := s.task(r.str("upid"))
	if err != nil {
		return nil, err
	}
	return t.status(), nil
}

func (s *Server) taskLog(r *request) (any, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	t, err := s.task(r.str("upid"))
	if err != nil {
		return nil, err
	}
	start := r.intOr("start", 0)
	limit := r.intOr("limit", 50)
	t.mu.Lock()
	lines := append([]string(nil), t.log...)
	t.mu.Unlock()
	out := []map[string]any{}
	for i := start; i < len(lines) && len(out) < limit; i++ {
		out = append(out, map[string]any{"n": i + 1, "t": lines[i]})
	}
	if len(lines) == 0 && start == 0 && limit > 0 {
		out = append(out, map[string]any{"n": 1, "t": "no content"})
	}
	r.extra = map[string]any{"total": len(lines)}
	return out, nil
}

func (s *Server) taskIndex(r *request) (any, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	s.mu.Lock()
	list := append([]*task(nil), s.taskList...)
	s.mu.Unlock()
	vmid := r.str("vmid")
	typ := r.str("typefilter")
	onlyErrors := r.boolOr("errors", false)
	source := r.str("source")
	out := []map[string]any{}
	for i := len(list) - 1; i >= 0; i-- {
		st := list[i].status()
		if vmid != "" && st["id"] != vmid {
			continue
		}
		if typ != "" && st["type"] != typ {
			continue
		}
		running := st["status"] == "running"
		if source == "active" && !running || (source == "" || source == "archive") && running {
			continue
		}
		if !running {
			st["status"] = st["exitstatus"]
			delete(st, "exitstatus")
			list[i].mu.Lock()
			st["endtime"] = list[i].endtime
			list[i].mu.Unlock()
		}
		if onlyErrors && (running || st["status"] == "OK") {
			continue
		}
		out = append(out, st)
	}
	start, limit := r.intOr("start", 0), r.intOr("limit", 50)
	r.extra = map[string]any{"total": len(out)}
	if start > len(out) {
		start = len(out)
	}
	out = out[start:]
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
