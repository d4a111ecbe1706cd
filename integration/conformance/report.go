//go:build linux

package conformance

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Reasons explain differences from the baseline: suite, runtime ("*" for any) and test name
// give the reason written in the report. A difference without one gets its observed failure.
type Reasons map[[3]string]string

// LoadReasons reads a reasons file: one difference a line, fields separated by tabs:
// suite, runtime (or *), test name, reason. Blank lines and lines starting with # are
// skipped. A missing file is an empty set.
func LoadReasons(path string) (Reasons, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return Reasons{}, nil
		}
		return nil, err
	}
	defer f.Close()
	rs := Reasons{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		fs := strings.SplitN(l, "\t", 4)
		if len(fs) != 4 || fs[3] == "" {
			return nil, fmt.Errorf("%s:%d: want suite<TAB>runtime<TAB>test<TAB>reason", path, n)
		}
		rs[[3]string{fs[0], fs[1], fs[2]}] = fs[3]
	}
	return rs, sc.Err()
}

func (rs Reasons) lookup(suite, runtime, test string) (string, bool) {
	if r, ok := rs[[3]string{suite, runtime, test}]; ok {
		return r, true
	}
	r, ok := rs[[3]string{suite, "*", test}]
	return r, ok
}

// Difference is a test whose status on a runtime is not the baseline's.
type Difference struct {
	Suite, Runtime, Test string
	Baseline, Status     string
	// Message is the failure (or skip) message on Runtime, or the baseline's when only the
	// baseline failed.
	Message string
	Reason  string
}

// Differences compares every non-baseline Result with the baseline Result of its suite.
func Differences(results []*Result, baseline string, reasons Reasons) []Difference {
	base := map[string]*Result{}
	for _, r := range results {
		if r.Runtime == baseline {
			base[r.Suite] = r
		}
	}
	var out []Difference
	for _, r := range sorted(results) {
		b := base[r.Suite]
		if r.Runtime == baseline || b == nil {
			continue
		}
		bt := index(b.Tests)
		rt := index(r.Tests)
		names := map[string]bool{}
		for n := range bt {
			names[n] = true
		}
		for n := range rt {
			names[n] = true
		}
		var sortedNames []string
		for n := range names {
			sortedNames = append(sortedNames, n)
		}
		sort.Strings(sortedNames)
		for _, n := range sortedNames {
			x, okb := bt[n]
			y, okr := rt[n]
			if !okb {
				x = Test{Name: n, Status: NotRun}
			}
			if !okr {
				y = Test{Name: n, Status: NotRun}
			}
			if x.Status == y.Status {
				continue
			}
			d := Difference{Suite: r.Suite, Runtime: r.Runtime, Test: n, Baseline: x.Status, Status: y.Status, Message: y.Message}
			if d.Message == "" && y.Status == Passed {
				d.Message = "(the baseline's) " + x.Message
			}
			if reason, ok := reasons.lookup(r.Suite, r.Runtime, n); ok {
				d.Reason = reason
			} else {
				d.Reason = observed(d)
			}
			out = append(out, d)
		}
	}
	return out
}

// observed is the reason of a difference nobody has explained yet: what was seen.
func observed(d Difference) string {
	switch {
	case d.Status == Passed:
		return "passes here; fails on the runc shim"
	case d.Status == NotRun:
		return "did not run to its end here"
	}
	m := d.Message
	if len(m) > 160 {
		m = m[:160] + " …"
	}
	return "observed: " + m
}

func index(ts []Test) map[string]Test {
	m := make(map[string]Test, len(ts))
	for _, t := range ts {
		m[t.Name] = t
	}
	return m
}

// sorted orders results by suite (Suites order), then runtime (Runtimes order).
func sorted(results []*Result) []*Result {
	rank := func(r *Result) (int, int) {
		si, ri := len(Suites), len(Runtimes())
		for i, s := range Suites {
			if s == r.Suite {
				si = i
			}
		}
		for i, rt := range Runtimes() {
			if rt.Key == r.Runtime {
				ri = i
			}
		}
		return si, ri
	}
	out := append([]*Result(nil), results...)
	sort.SliceStable(out, func(i, j int) bool {
		a1, a2 := rank(out[i])
		b1, b2 := rank(out[j])
		if a1 != b1 {
			return a1 < b1
		}
		return a2 < b2
	})
	return out
}

// WriteReport writes the Markdown report of results: the summary per suite and runtime,
// then every difference from the baseline runtime.
func WriteReport(w io.Writer, results []*Result, baseline string, reasons Reasons, command string) error {
	bw := &errWriter{w: w}
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("# Conformance\n\n")
	p("containerd's own client suite (`integration/client` of containerd v2.4.2, run with\n")
	p("`TEST_RUNTIME`) and cri-tools' `critest` v1.37.0, against containerd's runc shim and lxcri's\n")
	p("backends on the same host. Images come from a local registry (busybox built offline under\n")
	p("the names the suites use), so tests that need the original images' content fail on every\n")
	p("runtime alike; what matters is the difference from the runc shim. lxcri runs with\n")
	p("`[zfs] dataset` on a zfs-fuse pool, so that its checkpoint tests run. containerd's suite\n")
	p("is built with one change: its `-image-list` flag takes its default from `TEST_IMAGE_LIST`,\n")
	p("since the suite reads its image names before it parses flags.\n\n")
	if command != "" {
		p("Written by `%s`.\n\n", command)
	}

	p("## Summary\n\n")
	p("| Suite | Runtime | Passed | Failed | Skipped | Differences from runc | Time | Focus |\n")
	p("|---|---|---:|---:|---:|---:|---:|---|\n")
	diffs := Differences(results, baseline, reasons)
	nd := map[[2]string]int{}
	for _, d := range diffs {
		nd[[2]string{d.Suite, d.Runtime}]++
	}
	hasBase := map[string]bool{}
	for _, r := range results {
		if r.Runtime == baseline {
			hasBase[r.Suite] = true
		}
	}
	for _, r := range sorted(results) {
		pa, fa, sk := r.Counts()
		dn := "baseline"
		switch {
		case r.Runtime == baseline:
		case !hasBase[r.Suite]:
			dn = "no baseline run"
		default:
			dn = fmt.Sprint(nd[[2]string{r.Suite, r.Runtime}])
		}
		focus := "whole suite"
		if r.Focus != "" {
			focus = "`" + r.Focus + "`"
		}
		p("| %s | %s | %d | %d | %d | %s | %s | %s |\n", r.Suite, r.RuntimeName, pa, fa, sk, dn, r.Duration, focus)
	}
	var runErrs []string
	for _, r := range sorted(results) {
		if r.Error != "" {
			runErrs = append(runErrs, fmt.Sprintf("- %s on %s: %s", r.Suite, r.RuntimeName, cell(r.Error)))
		}
	}
	if len(runErrs) > 0 {
		p("\nRuns that did not finish normally:\n\n%s\n", strings.Join(runErrs, "\n"))
	}
	p("\nTimes are wall-clock on a 2-core host, each suite with its own containerd.\n")
	if len(Skips) > 0 {
		p("\nNot run on any runtime:\n\n| Suite | Test | Why |\n|---|---|---|\n")
		for _, s := range Skips {
			p("| %s | %s | %s |\n", s.Suite, cell(s.Test), cell(s.Reason))
		}
	}

	names := map[string]string{}
	for _, r := range results {
		names[r.Runtime] = r.RuntimeName
	}
	p("\n## Differences from the runc shim\n")
	if len(diffs) == 0 {
		p("\nNone.\n")
	}
	var cur [2]string
	for _, d := range diffs {
		if k := [2]string{d.Suite, d.Runtime}; k != cur {
			cur = k
			p("\n### %s on %s\n\n", d.Suite, names[d.Runtime])
			p("| Test | runc shim | here | Failure message | Reason |\n|---|---|---|---|---|\n")
		}
		p("| %s | %s | %s | %s | %s |\n", cell(d.Test), d.Baseline, d.Status, cell(d.Message), cell(d.Reason))
	}
	return bw.err
}

// cell makes s fit one Markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}
