//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/runtime"
)

// Status is a check's verdict.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is one line of `lxcri check`.
type Result struct {
	// Backend is what the line is about: "host", a backend name, "zfs", "checkpoint".
	Backend string `json:"backend"`
	// Name is the thing checked, e.g. "liblxc".
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Fix says what to do about a warn or fail.
	Fix string `json:"fix,omitempty"`
}

// check is one check of the host; it may return several results (one per binary, say).
type check struct {
	backend, name string
	// slow checks show a progress line while they run
	slow bool
	run  func(ctx context.Context, env *checkEnv) []Result
}

// checkEnv is what checks look at; tests point it at fixtures.
type checkEnv struct {
	cfg    *runtime.Config
	cfgErr error
	// lookPath finds a binary (exec.LookPath, with the sbin folders added).
	lookPath func(string) (string, error)
	// output runs a command and returns its combined output.
	output func(ctx context.Context, name string, args ...string) (string, error)
	// cgroupRoot is /sys/fs/cgroup.
	cgroupRoot string
	// cgroups says how cgroupRoot is laid out (cgroupLayout).
	cgroups func() (layout string, v2controllers []string, err error)
}

// runner runs checks in order; while a slow one runs, progress (a terminal, or nil) shows
// which and for how long.
type runner struct {
	progress io.Writer
	// progressAfter is how long a slow check runs before its progress line appears.
	progressAfter time.Duration
}

func (r *runner) run(ctx context.Context, env *checkEnv, checks []check) []Result {
	var out []Result
	for _, c := range checks {
		out = append(out, r.one(ctx, env, c)...)
	}
	return out
}

func (r *runner) one(ctx context.Context, env *checkEnv, c check) []Result {
	if !c.slow || r.progress == nil {
		return c.run(ctx, env)
	}
	done := make(chan []Result, 1)
	go func() { done <- c.run(ctx, env) }()
	start := time.Now()
	timer := time.NewTimer(r.progressAfter)
	defer timer.Stop()
	var tick <-chan time.Time
	shown := false
	frames := `|/-\`
	for i := 0; ; i++ {
		select {
		case res := <-done:
			if shown {
				fmt.Fprint(r.progress, "\r\033[K")
			}
			return res
		case <-timer.C:
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			tick = t.C
			shown = true
			fmt.Fprintf(r.progress, "\r\033[K%c checking %s: %s ...", frames[i%len(frames)], c.backend, c.name)
		case <-tick:
			fmt.Fprintf(r.progress, "\r\033[K%c checking %s: %s ... %.1fs", frames[i%len(frames)], c.backend, c.name, time.Since(start).Seconds())
		}
	}
}

// worst is the overall verdict: fail if any failed, warn if any warned.
func worst(rs []Result) Status {
	s := OK
	for _, r := range rs {
		switch {
		case r.Status == Fail:
			return Fail
		case r.Status == Warn:
			s = Warn
		}
	}
	return s
}

func printResults(w io.Writer, rs []Result) {
	width := 0
	for _, r := range rs {
		if n := len(r.Backend) + len(r.Name) + 2; n > width {
			width = n
		}
	}
	for _, r := range rs {
		label := r.Backend + ": " + r.Name
		fmt.Fprintf(w, "%-4s  %-*s  %s\n", r.Status, width, label, r.Detail)
		if r.Fix != "" && r.Status != OK {
			for _, l := range strings.Split(r.Fix, "\n") {
				fmt.Fprintf(w, "      %-*s  fix: %s\n", width, "", l)
			}
		}
	}
	counts := map[Status]int{}
	for _, r := range rs {
		counts[r.Status]++
	}
	fmt.Fprintf(w, "\n%d ok, %d warn, %d fail", counts[OK], counts[Warn], counts[Fail])
	if sum := summary(rs); len(sum) > 0 {
		fmt.Fprintf(w, "; by backend (with the host's lines): %s", strings.Join(sum, ", "))
	}
	fmt.Fprintln(w)
}

// summary is each checked part's verdict, the host's lines counted in every one.
func summary(rs []Result) []string {
	var host []Result
	var order []string
	by := map[string][]Result{}
	for _, r := range rs {
		if r.Backend == "host" {
			host = append(host, r)
			continue
		}
		if _, ok := by[r.Backend]; !ok {
			order = append(order, r.Backend)
		}
		by[r.Backend] = append(by[r.Backend], r)
	}
	var out []string
	for _, b := range order {
		out = append(out, b+" "+string(worst(append(append([]Result(nil), host...), by[b]...))))
	}
	return out
}

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := newFlags("check", "", stderr)
	backend := fs.String("backend", "", "check only this backend (and the host)")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	env := hostEnv()
	checks := hostChecks()
	if *backend != "" {
		var sel []check
		for _, c := range checks {
			if c.backend == *backend || c.backend == "host" {
				sel = append(sel, c)
			}
		}
		if len(sel) == len(selectHost(checks)) {
			return fmt.Errorf("--backend %q: no such backend (backends: lxc, crun, zfs, proxmox)", *backend)
		}
		checks = sel
	}
	r := &runner{progressAfter: 300 * time.Millisecond}
	if f, ok := stderr.(*os.File); ok && !*asJSON && isTerminal(f) {
		r.progress = f
	}
	rs := r.run(ctx, env, checks)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Status  Status   `json:"status"`
			Results []Result `json:"results"`
		}{worst(rs), rs}); err != nil {
			return err
		}
	} else {
		printResults(stdout, rs)
	}
	if worst(rs) == Fail {
		return exitError(1)
	}
	return nil
}

func selectHost(cs []check) []check {
	var out []check
	for _, c := range cs {
		if c.backend == "host" {
			out = append(out, c)
		}
	}
	return out
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
