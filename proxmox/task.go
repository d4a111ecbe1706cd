package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// upidRe is PVE's UPID format (pve-common PVE/Tools.pm): node, pid, pstart, starttime, type,
// id, user, with a trailing colon.
var upidRe = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$`)

// upid is a parsed task id.
type upid struct {
	raw, node, typ, id string
}

func parseUPID(s string) (upid, error) {
	m := upidRe.FindStringSubmatch(s)
	if m == nil {
		return upid{}, fmt.Errorf("PVE answered %q where a task id (UPID) was expected: %w", s, errdefs.ErrUnknown)
	}
	return upid{raw: s, node: m[1], typ: m[6], id: m[7]}, nil
}

func (u upid) String() string {
	if u.id != "" {
		return u.typ + " " + u.id
	}
	return u.typ
}

// taskLogTail is how many of a failed task's last log lines go into the error.
const taskLogTail = 10

// task sends a call that starts a PVE task and waits for the task to end.
func (c *Client) task(ctx context.Context, k call) error {
	var id string
	if err := c.do(ctx, k, &id); err != nil {
		return err
	}
	u, err := parseUPID(id)
	if err != nil {
		return &Error{Op: k.op(), Message: err.Error(), kind: errdefs.ErrUnknown}
	}
	return c.wait(ctx, u)
}

// Wait waits for the task with the given UPID to end within the client's timeout. A task
// that fails is an *Error holding PVE's exit status and the end of the task's log; one still
// running at the deadline is DeadlineExceeded (PVE goes on with it).
func (c *Client) Wait(ctx context.Context, id string) error {
	u, err := parseUPID(id)
	if err != nil {
		return err
	}
	return c.wait(ctx, u)
}

func (c *Client) wait(ctx context.Context, u upid) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	statusPath := fmt.Sprintf("/nodes/%s/tasks/%s/status", u.node, url.PathEscape(u.raw))
	begun := time.Now()
	for {
		var st struct {
			Status     string `json:"status"`
			ExitStatus string `json:"exitstatus"`
		}
		err := c.do(ctx, call{method: http.MethodGet, path: statusPath, need: "Sys.Audit on /nodes/" + u.node + " (or to own the task)"}, &st)
		if err != nil {
			if ctx.Err() != nil {
				return c.taskTimedOut(u)
			}
			return err
		}
		if st.Status == "stopped" {
			if st.ExitStatus == "OK" || strings.HasPrefix(st.ExitStatus, "WARNINGS:") {
				return nil
			}
			return c.taskFailed(ctx, u, st.ExitStatus)
		}
		if err := sleep(ctx, pollInterval(time.Since(begun))); err != nil {
			return c.taskTimedOut(u)
		}
	}
}

// Task status polling: PVE has no call that waits for a task, so its end is seen at the
// next poll. The pause grows with the task's age, a fifth of it, so a task is seen ended at
// most a fifth of its run time late (plus one poll's round trip) while a long task costs
// the node few calls; it stays within [minPoll, maxPoll].
const (
	minPoll = 10 * time.Millisecond
	maxPoll = 500 * time.Millisecond
)

// pollInterval is the pause before the next status poll of a task running for elapsed.
func pollInterval(elapsed time.Duration) time.Duration {
	return min(max(elapsed/5, minPoll), maxPoll)
}

func (c *Client) taskFailed(ctx context.Context, u upid, exit string) error {
	kind := definite(exit)
	if kind == nil {
		kind = errdefs.ErrFailedPrecondition
	}
	msg := "failed: " + exit
	if lines := c.taskLog(ctx, u); len(lines) > 0 {
		msg += "; task log: " + strings.Join(lines, " | ")
	}
	return &Error{Op: "task " + u.String() + " (" + u.raw + ")", Message: msg, kind: kind}
}

func (c *Client) taskTimedOut(u upid) error {
	// The caller's context is spent: the log gets a short context of its own.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := fmt.Sprintf("still running after %s (PVE carries on with it)", c.timeout)
	if lines := c.taskLog(ctx, u); len(lines) > 0 {
		msg += "; task log so far: " + strings.Join(lines, " | ")
	}
	return &Error{Op: "task " + u.String() + " (" + u.raw + ")", Message: msg, kind: context.DeadlineExceeded}
}

// taskLog returns the last lines of a task's log, or nil when it cannot be read (the
// error at hand matters more).
func (c *Client) taskLog(ctx context.Context, u upid) []string {
	var rows []struct {
		N int    `json:"n"`
		T string `json:"t"`
	}
	k := call{method: http.MethodGet, path: fmt.Sprintf("/nodes/%s/tasks/%s/log", u.node, url.PathEscape(u.raw)),
		params: map[string]any{"start": 0, "limit": 5000}}
	if err := c.do(ctx, k, &rows); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return []string{"(task log unavailable: " + e.Message + ")"}
		}
		return nil
	}
	var lines []string
	for _, r := range rows {
		if t := strings.TrimSpace(r.T); t != "" && t != "no content" {
			lines = append(lines, t)
		}
	}
	if len(lines) > taskLogTail {
		lines = lines[len(lines)-taskLogTail:]
	}
	return lines
}
