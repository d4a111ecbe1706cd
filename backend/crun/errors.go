package crun

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
)

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// cliError adds the CLI's last logged error to err: with stdio handed to the container,
// the CLI's own stderr is not ours to read, but its --log file is.
func cliError(err error, what, logPath string) error {
	if msg := lastLogError(logPath); msg != "" {
		return fmt.Errorf("%s: %s: %w", what, msg, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func lastLogError(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var last string
	s := bufio.NewScanner(f)
	for s.Scan() {
		var l struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(s.Bytes(), &l) == nil {
			if l.Level == "error" || l.Level == "fatal" {
				last = l.Msg
			}
		} else if t := strings.TrimSpace(s.Text()); t != "" {
			last = t
		}
	}
	return last
}

// killError makes the CLI's refusal to signal a container that is gone NotFound, as
// containerd's runc shim does: the container was deleted behind the shim's back (`runc
// delete --force` with the same root) or its init has just exited. Callers such as
// containerd's Task.Kill then treat the task as finished instead of failing.
func killError(err error) error {
	msg := strings.ToLower(err.Error())
	if isNotExist(err) || containsAny(msg, "container not running", "process already finished", "no such process") {
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	}
	return err
}
