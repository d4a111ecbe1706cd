package runtime

import (
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestExitWatcherOrphans: with the shim's waiting rules, os/exec keeps working while
// orphans exit around it, an orphan's exit reaches a later Wait, and no zombie is left.
func TestExitWatcherOrphans(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	w := NewExitWatcher()
	defer w.Close()

	// The shell exits at once; its background child becomes our orphan and exits 5.
	out, err := exec.Command("sh", "-c", "(sleep 0.3; exit 5) & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}

	// Meanwhile os/exec children must see their own exits (no "no child processes").
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := exec.Command("sh", "-c", "sleep 0.0$((RANDOM % 5)); exit 3").Run(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("os/exec child: %v", err)
	}

	time.Sleep(600 * time.Millisecond) // the orphan has exited and been reaped by now
	if z := zombieChildren(); len(z) > 0 {
		t.Errorf("zombies left: %v", z)
	}
	select {
	case st := <-w.Wait(orphan):
		if st != 5 {
			t.Errorf("orphan status %d, want 5", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no status for the orphan")
	}
}

// TestExitWatcherRun: a started command's status is its exit code, or 128+signal.
func TestExitWatcherRun(t *testing.T) {
	w := NewExitWatcher()
	defer w.Close()
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 3", 3},
		{"kill -9 $$", 137},
		{"true", 0},
	} {
		st, err := w.Run(exec.Command("sh", "-c", tc.script))
		if err != nil || st != tc.want {
			t.Errorf("%s: status %d, %v; want %d", tc.script, st, err, tc.want)
		}
	}
	if _, err := w.Run(exec.Command("/nonexistent/binary")); err == nil {
		t.Error("a missing binary started")
	}
}
