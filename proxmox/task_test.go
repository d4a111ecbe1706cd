package proxmox

import (
	"testing"
	"time"
)

// TestPollSchedule: a task's end is seen at most a fifth of its run time late (never less
// than one minimum pause, never more than the maximum), and a long task is polled a
// bounded number of times.
func TestPollSchedule(t *testing.T) {
	for _, tc := range []struct {
		run      time.Duration
		maxPolls int
	}{
		{time.Millisecond, 2},
		{15 * time.Millisecond, 3},
		{61 * time.Millisecond, 8},
		{161 * time.Millisecond, 15},
		{250 * time.Millisecond, 17},
		{1100 * time.Millisecond, 25},
		{10 * time.Second, 45},
		{5 * time.Minute, 630},
	} {
		// The first poll comes right after the task begins; each pause follows the
		// schedule until a poll finds the task ended.
		var at time.Duration
		polls := 1
		for at < tc.run {
			at += pollInterval(at)
			polls++
		}
		lag := at - tc.run
		if bound := min(max(tc.run/5, minPoll), maxPoll); lag > bound {
			t.Errorf("a task of %v is seen ended %v late, more than %v", tc.run, lag, bound)
		}
		if polls > tc.maxPolls {
			t.Errorf("a task of %v is polled %d times, more than %d", tc.run, polls, tc.maxPolls)
		}
	}
}
