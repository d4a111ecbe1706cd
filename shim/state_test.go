package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/task"
	ctdruntime "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/lxcri/lxcri/runtime/fake"
)

// fakeEnv is a task service over the fake backend, with helpers that drive one RPC each.
type fakeEnv struct {
	t      *testing.T
	s      taskAPI.TTRPCTaskService
	ctx    context.Context
	b      *fake.Backend
	log    *fake.Log
	bundle string
}

func newFakeEnv(t *testing.T, linux *specs.Linux) *fakeEnv {
	t.Helper()
	s, ctx, b, l, _ := newFakeService(t, "")
	if linux == nil {
		// A pid namespace of its own: the init's exit kills nothing else.
		linux = &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}}
	}
	bundle := writeBundle(t, &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}, Root: &specs.Root{Path: "rootfs"}, Linux: linux})
	return &fakeEnv{t: t, s: s, ctx: ctx, b: b, log: l, bundle: bundle}
}

func (e *fakeEnv) create(id string) error {
	_, err := e.s.Create(e.ctx, &taskAPI.CreateTaskRequest{ID: id, Bundle: e.bundle})
	return native(err)
}

func (e *fakeEnv) start(id, exec string) error {
	_, err := e.s.Start(e.ctx, &taskAPI.StartRequest{ID: id, ExecID: exec})
	return native(err)
}

func (e *fakeEnv) exec(id, exec string) error {
	b, _ := json.Marshal(&specs.Process{Args: []string{"true"}, Cwd: "/"})
	_, err := e.s.Exec(e.ctx, &taskAPI.ExecProcessRequest{ID: id, ExecID: exec, Spec: protoAny(b)})
	return native(err)
}

func (e *fakeEnv) kill(id, exec string, all bool) error {
	_, err := e.s.Kill(e.ctx, &taskAPI.KillRequest{ID: id, ExecID: exec, Signal: 9, All: all})
	return native(err)
}

func (e *fakeEnv) del(id, exec string) error {
	_, err := e.s.Delete(e.ctx, &taskAPI.DeleteRequest{ID: id, ExecID: exec})
	return native(err)
}

func (e *fakeEnv) pause(id string) error {
	_, err := e.s.Pause(e.ctx, &taskAPI.PauseRequest{ID: id})
	return native(err)
}

func (e *fakeEnv) resume(id string) error {
	_, err := e.s.Resume(e.ctx, &taskAPI.ResumeRequest{ID: id})
	return native(err)
}

func (e *fakeEnv) checkpoint(id string) error {
	_, err := e.s.Checkpoint(e.ctx, &taskAPI.CheckpointTaskRequest{ID: id, Path: e.t.TempDir()})
	return native(err)
}

func (e *fakeEnv) update(id string) error {
	b, _ := json.Marshal(&specs.LinuxResources{})
	_, err := e.s.Update(e.ctx, &taskAPI.UpdateTaskRequest{ID: id, Resources: &anypb.Any{TypeUrl: "x", Value: b}})
	return native(err)
}

// status is State's answer, or the error.
func (e *fakeEnv) status(id, exec string) (task.Status, error) {
	r, err := e.s.State(e.ctx, &taskAPI.StateRequest{ID: id, ExecID: exec})
	if err != nil {
		return 0, native(err)
	}
	return r.Status, nil
}

// wait returns the process's exit status once its TaskExit is out.
func (e *fakeEnv) wait(id, exec string) (uint32, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	r, err := e.s.Wait(ctx, &taskAPI.WaitRequest{ID: id, ExecID: exec})
	if err != nil {
		return 0, native(err)
	}
	return r.ExitStatus, nil
}

// exitInit ends the init with status and waits until its exit is published.
func (e *fakeEnv) exitInit(id string, status int) error {
	e.b.Container(id).Exit(status)
	_, err := e.wait(id, "")
	return err
}

func (e *fakeEnv) exitExec(id, exec string, status int) error {
	e.b.Container(id).ExecProcess(exec).SetExited(status)
	_, err := e.wait(id, exec)
	return err
}

// eventsN waits until n task events are published (they leave through a queue) and
// lists them, without the backend's calls.
func (e *fakeEnv) eventsN(n int) []string {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.events()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("events %v: fewer than %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// events lists the task events published so far, without the backend's calls.
func (e *fakeEnv) events() []string {
	var out []string
	for _, l := range e.log.Lines() {
		if strings.HasPrefix(l, "/tasks/") {
			out = append(out, strings.TrimPrefix(l, "/tasks/"))
		}
	}
	return out
}

func native(err error) error {
	if err == nil {
		return nil
	}
	return errgrpc.ToNative(err)
}

// TestStateMachine drives one task through sequences of RPCs: each step either succeeds or
// fails with the errdefs class the state machine gives for that transition.
func TestStateMachine(t *testing.T) {
	type step struct {
		name string
		do   func(e *fakeEnv) error
		want func(error) bool // nil: success
	}
	var (
		create     = step{"create", func(e *fakeEnv) error { return e.create("c") }, nil}
		start      = step{"start", func(e *fakeEnv) error { return e.start("c", "") }, nil}
		exec       = step{"exec", func(e *fakeEnv) error { return e.exec("c", "x") }, nil}
		startExec  = step{"start exec", func(e *fakeEnv) error { return e.start("c", "x") }, nil}
		exitExec   = step{"exec exits", func(e *fakeEnv) error { return e.exitExec("c", "x", 3) }, nil}
		exit       = step{"init exits", func(e *fakeEnv) error { return e.exitInit("c", 0) }, nil}
		pause      = step{"pause", func(e *fakeEnv) error { return e.pause("c") }, nil}
		resume     = step{"resume", func(e *fakeEnv) error { return e.resume("c") }, nil}
		del        = step{"delete", func(e *fakeEnv) error { return e.del("c", "") }, nil}
		delExec    = step{"delete exec", func(e *fakeEnv) error { return e.del("c", "x") }, nil}
		isCreated  = stateIs("c", "", task.Status_CREATED)
		isRunning  = stateIs("c", "", task.Status_RUNNING)
		isPaused   = stateIs("c", "", task.Status_PAUSED)
		isStopped  = stateIs("c", "", task.Status_STOPPED)
		execIsGone = step{"state of deleted exec", func(e *fakeEnv) error { _, err := e.status("c", "x"); return err }, errdefs.IsNotFound}
		precond    = errdefs.IsFailedPrecondition
		notFound   = errdefs.IsNotFound
	)
	fail := func(s step, want func(error) bool) step { s.name += " fails"; s.want = want; return s }
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"lifecycle", []step{create, isCreated, start, isRunning, pause, isPaused, resume, isRunning, exit, isStopped, del}},
		{"start twice", []step{create, start, fail(start, precond)}},
		{"start after exit", []step{create, start, exit, fail(start, precond)}},
		{"pause created", []step{create, fail(pause, precond)}},
		{"pause twice", []step{create, start, pause, fail(pause, precond), isPaused}},
		{"resume running", []step{create, start, fail(resume, precond)}},
		{"pause stopped", []step{create, start, exit, fail(pause, precond)}},
		{"delete running", []step{create, start, fail(del, precond), isRunning}},
		{"delete paused", []step{create, start, pause, fail(del, precond)}},
		{"delete created", []step{create, del, fail(start, notFound)}},
		{"delete twice", []step{create, start, exit, del, fail(del, notFound)}},
		{"kill stopped", []step{create, start, exit, fail(step{"kill", func(e *fakeEnv) error { return e.kill("c", "", false) }, nil}, notFound)}},
		{"kill all stopped", []step{create, start, exit, fail(step{"kill all", func(e *fakeEnv) error { return e.kill("c", "", true) }, nil}, notFound)}},
		{"kill created init", []step{create, {"kill", func(e *fakeEnv) error { return e.kill("c", "", false) }, nil},
			{"wait", func(e *fakeEnv) error { _, err := e.wait("c", ""); return err }, nil}, isStopped, del}},
		{"exec lifecycle", []step{create, start, exec, stateIs("c", "x", task.Status_CREATED), startExec, stateIs("c", "x", task.Status_RUNNING),
			exitExec, stateIs("c", "x", task.Status_STOPPED), delExec, execIsGone}},
		{"exec start on created task", []step{create, exec, fail(startExec, precond)}},
		{"exec start on paused task", []step{create, start, exec, pause, fail(startExec, precond)}},
		{"exec of stopped task", []step{create, start, exit, fail(exec, precond)}},
		{"exec twice", []step{create, start, exec, fail(exec, errdefs.IsAlreadyExists)}},
		{"exec start twice", []step{create, start, exec, startExec, fail(startExec, precond)}},
		{"delete running exec", []step{create, start, exec, startExec, fail(delExec, precond)}},
		{"delete created exec", []step{create, start, exec, delExec, execIsGone, fail(startExec, notFound)}},
		{"kill created exec", []step{create, start, exec, fail(step{"kill exec", func(e *fakeEnv) error { return e.kill("c", "x", false) }, nil}, precond)}},
		{"kill exited exec", []step{create, start, exec, startExec, exitExec, fail(step{"kill exec", func(e *fakeEnv) error { return e.kill("c", "x", false) }, nil}, notFound)}},
		{"checkpoint created", []step{create, fail(step{"checkpoint", func(e *fakeEnv) error { return e.checkpoint("c") }, nil}, precond)}},
		{"checkpoint paused", []step{create, start, pause, {"checkpoint", func(e *fakeEnv) error { return e.checkpoint("c") }, nil}}},
		{"update stopped", []step{create, start, exit, fail(step{"update", func(e *fakeEnv) error { return e.update("c") }, nil}, precond)}},
		{"update running", []step{create, start, {"update", func(e *fakeEnv) error { return e.update("c") }, nil}}},
		{"unknown exec", []step{create, fail(step{"state", func(e *fakeEnv) error { _, err := e.status("c", "nope"); return err }, nil}, notFound)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t, nil)
			for i, s := range tc.steps {
				err := s.do(e)
				switch {
				case s.want == nil && err != nil:
					t.Fatalf("step %d (%s): %v", i, s.name, err)
				case s.want != nil && (err == nil || !s.want(err)):
					t.Fatalf("step %d (%s): got %v", i, s.name, err)
				}
			}
		})
	}
}

func stateIs(id, exec string, want task.Status) struct {
	name string
	do   func(e *fakeEnv) error
	want func(error) bool
} {
	return struct {
		name string
		do   func(e *fakeEnv) error
		want func(error) bool
	}{"state is " + want.String(), func(e *fakeEnv) error {
		got, err := e.status(id, exec)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("state %s, want %s", got, want)
		}
		return nil
	}, nil}
}

// TestBackendErrors: a backend's error reaches containerd with its errdefs class and leaves
// the task in the state it was in.
func TestBackendErrors(t *testing.T) {
	busy := fmt.Errorf("fake is busy: %w", errdefs.ErrUnavailable)
	for _, tc := range []struct {
		op    string
		setup func(e *fakeEnv)
		call  func(e *fakeEnv) error
		after task.Status
	}{
		{"create", nil, func(e *fakeEnv) error { return e.create("c") }, 0},
		{"start", func(e *fakeEnv) { e.create("c") }, func(e *fakeEnv) error { return e.start("c", "") }, task.Status_CREATED},
		{"pause", func(e *fakeEnv) { e.create("c"); e.start("c", "") }, func(e *fakeEnv) error { return e.pause("c") }, task.Status_RUNNING},
		{"resume", func(e *fakeEnv) { e.create("c"); e.start("c", ""); e.pause("c") }, func(e *fakeEnv) error { return e.resume("c") }, task.Status_PAUSED},
		{"delete", func(e *fakeEnv) { e.create("c") }, func(e *fakeEnv) error { return e.del("c", "") }, task.Status_CREATED},
		{"kill", func(e *fakeEnv) { e.create("c"); e.start("c", "") }, func(e *fakeEnv) error { return e.kill("c", "", false) }, task.Status_RUNNING},
		{"kill-all", func(e *fakeEnv) { e.create("c"); e.start("c", "") }, func(e *fakeEnv) error { return e.kill("c", "", true) }, task.Status_RUNNING},
		{"exec", func(e *fakeEnv) { e.create("c"); e.start("c", "") }, func(e *fakeEnv) error { return e.exec("c", "x") }, task.Status_RUNNING},
		{"checkpoint", func(e *fakeEnv) { e.create("c"); e.start("c", "") }, func(e *fakeEnv) error { return e.checkpoint("c") }, task.Status_RUNNING},
		{"update", func(e *fakeEnv) { e.create("c"); e.start("c", "") }, func(e *fakeEnv) error { return e.update("c") }, task.Status_RUNNING},
		{"pids", func(e *fakeEnv) { e.create("c") }, func(e *fakeEnv) error {
			_, err := e.s.Pids(e.ctx, &taskAPI.PidsRequest{ID: "c"})
			return native(err)
		}, task.Status_CREATED},
		{"stats", func(e *fakeEnv) { e.create("c") }, func(e *fakeEnv) error {
			_, err := e.s.Stats(e.ctx, &taskAPI.StatsRequest{ID: "c"})
			return native(err)
		}, task.Status_CREATED},
	} {
		t.Run(tc.op, func(t *testing.T) {
			e := newFakeEnv(t, nil)
			if tc.setup != nil {
				tc.setup(e)
			}
			e.b.Fail(tc.op, busy)
			err := tc.call(e)
			if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "fake is busy") {
				t.Fatalf("got %v, want the backend's Unavailable error", err)
			}
			if tc.after == 0 {
				if _, err := e.status("c", ""); !errdefs.IsNotFound(err) {
					t.Errorf("a failed create left a task: %v", err)
				}
				return
			}
			if got, err := e.status("c", ""); err != nil || got != tc.after {
				t.Errorf("state %v (%v), want %v", got, err, tc.after)
			}
			e.b.Fail(tc.op, nil)
		})
	}
}

// TestExecStartFailure: an exec whose start fails is gone, and its task runs on.
func TestExecStartFailure(t *testing.T) {
	e := newFakeEnv(t, nil)
	must(t, e.create("c"), e.start("c", ""), e.exec("c", "x"))
	e.b.Fail("exec-start", fmt.Errorf("no such binary: %w", errdefs.ErrInvalidArgument))
	if err := e.start("c", "x"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("start exec: %v", err)
	}
	if _, err := e.status("c", "x"); !errdefs.IsNotFound(err) {
		t.Errorf("the failed exec is still there: %v", err)
	}
	must(t, e.exitInit("c", 0), e.del("c", ""))
	if want := []string{"create", "start", "exec-added", "exit", "delete"}; !slices.Equal(e.eventsN(len(want)), want) {
		t.Errorf("events %v, want %v", e.events(), want)
	}
}

func must(t *testing.T, errs ...error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// TestEventOrder: the events of a whole life come in containerd's order, exec exits before
// the init's, and TaskDelete last.
func TestEventOrder(t *testing.T) {
	e := newFakeEnv(t, nil)
	must(t, e.create("c"), e.start("c", ""), e.exec("c", "x"), e.start("c", "x"), e.pause("c"), e.resume("c"))
	// The init ends first, its exit waits for the exec's.
	e.b.Container("c").Exit(0)
	e.b.Container("c").ExecProcess("x").SetExited(1)
	if st, err := e.wait("c", ""); err != nil || st != 0 {
		t.Fatalf("wait: %d %v", st, err)
	}
	must(t, e.del("c", "x"), e.del("c", ""))
	want := []string{"create", "start", "exec-added", "exec-started", "paused", "resumed", "exit", "exit", "delete"}
	if got := e.eventsN(len(want)); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestExitNeverBeforeStart: a process that ends while its Start is under way has its
// TaskExit published after its TaskStart (or TaskExecStarted).
func TestExitNeverBeforeStart(t *testing.T) {
	t.Run("init", func(t *testing.T) {
		e := newFakeEnv(t, nil)
		must(t, e.create("c"))
		e.b.Before("start", func() {
			e.b.Container("c").Exit(5)
			// Let the exit watcher run: it must still wait for the start event.
			for i := 0; i < 100; i++ {
				time.Sleep(time.Millisecond)
			}
		})
		must(t, e.start("c", ""))
		if st, err := e.wait("c", ""); err != nil || st != 5 {
			t.Fatalf("wait: %d %v", st, err)
		}
		if want := []string{"create", "start", "exit"}; !slices.Equal(e.eventsN(len(want)), want) {
			t.Errorf("events %v, want %v", e.events(), want)
		}
	})
	t.Run("exec", func(t *testing.T) {
		e := newFakeEnv(t, nil)
		must(t, e.create("c"), e.start("c", ""), e.exec("c", "x"))
		e.b.Before("exec-start", func() {
			e.b.Container("c").ExecProcess("x").SetExited(2)
			for i := 0; i < 100; i++ {
				time.Sleep(time.Millisecond)
			}
		})
		must(t, e.start("c", "x"))
		if st, err := e.wait("c", "x"); err != nil || st != 2 {
			t.Fatalf("wait: %d %v", st, err)
		}
		if want := []string{"create", "start", "exec-added", "exec-started", "exit"}; !slices.Equal(e.eventsN(len(want)), want) {
			t.Errorf("events %v, want %v", e.events(), want)
		}
	})
}

// TestInitExitWaitsForExecs: while an exec still runs, the init's exit is not out, so the
// task is still running for State, Wait and Delete; TaskDelete never precedes TaskExit.
func TestInitExitWaitsForExecs(t *testing.T) {
	e := newFakeEnv(t, nil)
	must(t, e.create("c"), e.start("c", ""), e.exec("c", "x"), e.start("c", "x"))
	e.b.Container("c").Exit(0)
	<-e.b.Container("c").Init().Done()
	if st, err := e.status("c", ""); err != nil || st != task.Status_RUNNING {
		t.Errorf("state %v (%v) while the exit is not published, want RUNNING", st, err)
	}
	if err := e.del("c", ""); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("delete before the exit is published: %v, want FailedPrecondition", err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := e.s.Wait(ctx, &taskAPI.WaitRequest{ID: "c"}); !errors.Is(native(err), context.Canceled) {
		t.Errorf("wait returned %v before the exit was published", err)
	}
	must(t, e.exitExec("c", "x", 0))
	if _, err := e.wait("c", ""); err != nil {
		t.Fatal(err)
	}
	must(t, e.del("c", ""))
	if want := []string{"create", "start", "exec-added", "exec-started", "exit", "exit", "delete"}; !slices.Equal(e.eventsN(len(want)), want) {
		t.Errorf("events %v, want %v", e.events(), want)
	}
}

// TestDeleteCreatedPublishesExitFirst: deleting a task that never started ends its init;
// TaskExit comes before TaskDelete.
func TestDeleteCreatedPublishesExitFirst(t *testing.T) {
	e := newFakeEnv(t, nil)
	must(t, e.create("c"), e.del("c", ""))
	if want := []string{"create", "exit", "delete"}; !slices.Equal(e.eventsN(len(want)), want) {
		t.Errorf("events %v, want %v", e.events(), want)
	}
}

// TestPanicIsInternal: a panic in a backend call becomes an Internal error of that RPC; the
// shim and its other tasks run on.
func TestPanicIsInternal(t *testing.T) {
	e := newFakeEnv(t, nil)
	must(t, e.create("a"), e.create("b"), e.start("a", ""), e.start("b", ""))
	e.b.Panic("pause")
	if err := e.pause("a"); !errdefs.IsInternal(err) || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("pause: %v, want Internal naming the panic", err)
	}
	if st, err := e.status("b", ""); err != nil || st != task.Status_RUNNING {
		t.Fatalf("other task: %v %v", st, err)
	}
	must(t, e.exitInit("b", 0), e.del("b", ""), e.exitInit("a", 0), e.del("a", ""))
}

// TestPanicInCreateLeavesNothing: a Create that panics half way undoes what it made.
func TestPanicInCreateLeavesNothing(t *testing.T) {
	s, ctx, b, _, state := newFakeService(t, "")
	b.Panic("create")
	bundle := writeBundle(t, &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}, Root: &specs.Root{Path: "rootfs"}})
	_, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c", Bundle: bundle})
	if !errdefs.IsInternal(native(err)) {
		t.Fatalf("create: %v, want Internal", err)
	}
	if _, err := readRecord(bundle); err == nil {
		t.Error("the record is still in the bundle")
	}
	if _, err := os.Stat(filepath.Join(state, "unit", "c")); !os.IsNotExist(err) {
		t.Errorf("state folder left behind: %v", err)
	}
}

// TestExecInvisibleUntilComplete: while an Exec is under way, other RPCs do not see the
// exec (they answer NotFound instead of reaching a half-made process) and its id is taken.
func TestExecInvisibleUntilComplete(t *testing.T) {
	e := newFakeEnv(t, nil)
	must(t, e.create("c"), e.start("c", ""))
	inExec := make(chan struct{})
	release := make(chan struct{})
	e.b.Before("exec", func() {
		close(inExec)
		<-release
	})
	var wg sync.WaitGroup
	wg.Add(1)
	var execErr error
	go func() {
		defer wg.Done()
		execErr = e.exec("c", "x")
	}()
	<-inExec
	for name, call := range map[string]func() error{
		"state":  func() error { _, err := e.status("c", "x"); return err },
		"kill":   func() error { return e.kill("c", "x", false) },
		"start":  func() error { return e.start("c", "x") },
		"delete": func() error { return e.del("c", "x") },
		"wait":   func() error { _, err := e.wait("c", "x"); return err },
		"resize": func() error {
			_, err := e.s.ResizePty(e.ctx, &taskAPI.ResizePtyRequest{ID: "c", ExecID: "x"})
			return native(err)
		},
		"close io": func() error {
			_, err := e.s.CloseIO(e.ctx, &taskAPI.CloseIORequest{ID: "c", ExecID: "x", Stdin: true})
			return native(err)
		},
	} {
		if err := call(); !errdefs.IsNotFound(err) {
			t.Errorf("%s of a half-made exec: %v, want NotFound", name, err)
		}
	}
	if _, err := e.s.Pids(e.ctx, &taskAPI.PidsRequest{ID: "c"}); err != nil {
		t.Errorf("pids during an exec: %v", err)
	}
	if err := e.exec("c", "x"); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second exec with the id: %v, want AlreadyExists", err)
	}
	close(release)
	wg.Wait()
	if execErr != nil {
		t.Fatal(execErr)
	}
	if st, err := e.status("c", "x"); err != nil || st != task.Status_CREATED {
		t.Errorf("exec after Exec: %v %v", st, err)
	}
}

// TestOOMBeforeExit: the init's TaskOOM events come before its TaskExit, also those the
// watch missed but the backend counted; without a count, only what was seen.
func TestOOMBeforeExit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kill   func(c *fake.Container)
		want   []string
		hidden bool
	}{
		{"seen", func(c *fake.Container) { c.OOMKill(false) }, []string{"oom", "exit"}, false},
		{"missed but counted", func(c *fake.Container) { c.OOMKill(true) }, []string{"oom", "exit"}, false},
		{"two, one missed", func(c *fake.Container) { c.OOMKill(false); c.OOMKill(true) }, []string{"oom", "oom", "exit"}, false},
		{"missed, no count", func(c *fake.Container) { c.OOMKill(true) }, []string{"exit"}, true},
		{"none", func(c *fake.Container) {}, []string{"exit"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t, nil)
			must(t, e.create("c"), e.start("c", ""))
			c := e.b.Container("c")
			if tc.hidden {
				c.HideOOMCount()
			}
			tc.kill(c)
			must(t, e.exitInit("c", 137))
			var got []string
			for _, ev := range e.eventsN(len(tc.want) + 2) {
				if ev == "oom" || ev == "exit" {
					got = append(got, ev)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEventQueueClosed: an event sent after the queue closed (an exit on its way out while
// the shim shuts down) is dropped, not a panic.
func TestEventQueueClosed(t *testing.T) {
	l := &fake.Log{}
	q := newEventQueue(context.Background(), &logPublisher{log: l})
	q.send(&eventstypes.TaskStart{ContainerID: "c"})
	q.close()
	q.send(&eventstypes.TaskStart{ContainerID: "c"})
	q.close()
	if got := l.Lines(); !slices.Equal(got, []string{ctdruntime.TaskStartEventTopic}) {
		t.Errorf("published %v", got)
	}
}

// TestWatcherPanicStillPublishesExit: a backend call of the exit watcher that panics (the
// kill-all after an init without its own pid namespace exits) is logged, and the exit is
// still published.
func TestWatcherPanicStillPublishesExit(t *testing.T) {
	e := newFakeEnv(t, &specs.Linux{})
	must(t, e.create("c"), e.start("c", ""))
	e.b.Panic("kill-all")
	if err := e.exitInit("c", 0); err != nil {
		t.Fatalf("the exit was not published after the watcher's panic: %v", err)
	}
	must(t, e.del("c", ""))
}
