//go:build linux

package bench

import (
	"fmt"
	"math"
	"slices"
)

// target is one goal the figures are held against: a ratio of a runtime's median to the
// runc shim's in the same run, or (absolute) a median in the figure's unit.
type target struct {
	name string
	// figure is the measured figure, baseFigure the baseline's (when not the same).
	figure, baseFigure string
	keys               []string
	goal               float64
	atLeast            bool
	// absolute: goal is in the figure's unit, not a ratio.
	absolute bool
	// missing says why the target has no figure in this run ("" when it has one).
	missing string
	// runtime names the row's runtime when it is not a measured one.
	runtime string
}

// groupSize is the pod size of the group target: ten containers sharing a shim against
// ten runc shims of their own.
const groupSize = 10

func (r *Report) targetList() []target {
	lx := []string{CrunRunc, CrunCrun, LXC}
	crun := []string{CrunRunc, CrunCrun}
	ts := []target{
		{name: "start on lxc: `ctr run --rm`", figure: "ctr-run", keys: []string{LXC}, goal: 0.6},
		{name: "start on crun: `ctr run --rm`", figure: "ctr-run", keys: crun, goal: 0.9},
		{name: "start on lxc: NewTask", figure: "client-create", keys: []string{LXC}, goal: 0.6},
		{name: "start on lxc: Task.Start", figure: "client-start", keys: []string{LXC}, goal: 0.6},
		{name: "shim RSS per container", figure: "mem-rss", keys: lx, goal: 0.7},
	}
	g := target{name: fmt.Sprintf("group of %d (shim + helpers) vs %d runc shims, RSS", groupSize, groupSize),
		figure: fmt.Sprintf("pod%d-rss", groupSize), baseFigure: "mem-rss", keys: lx, goal: 0.5}
	if !slices.Contains(r.Options.PodSizes, groupSize) {
		g.missing = fmt.Sprintf("no pod of %d in this run (-pods)", groupSize)
	}
	ts = append(ts, g, target{name: "churn throughput", figure: "churn", keys: lx, goal: 1.5, atLeast: true})
	var largest int64
	for _, n := range r.Options.CkptSizes {
		largest = max(largest, n)
	}
	l := sizeLabel(largest)
	ts = append(ts,
		target{name: "checkpoint through containerd, " + l + " written, zfs-fuse", figure: "ckpt-api-" + sizeFlag(largest),
			keys: []string{LXCZFS}, goal: ms(CheckpointAPIGoal), absolute: true},
		target{name: "restore to RUNNING through containerd, " + l + " written, zfs-fuse", figure: "restore-api-" + sizeFlag(largest),
			keys: []string{LXCZFS}, goal: ms(RestoreAPIGoal), absolute: true},
		target{name: "checkpoint through containerd, kernel ZFS", keys: []string{LXCZFS}, goal: ms(CheckpointAPIGoal), absolute: true,
			runtime: "lxcri lxc backend, kernel ZFS", missing: "not measured: this host has no kernel ZFS (zfs-fuse only)"},
		target{name: "restore to RUNNING through containerd, kernel ZFS", keys: []string{LXCZFS}, goal: ms(RestoreAPIGoal), absolute: true,
			runtime: "lxcri lxc backend, kernel ZFS", missing: "not measured: this host has no kernel ZFS (zfs-fuse only)"},
	)
	return ts
}

// TargetRow is one line of the targets table.
type TargetRow struct {
	Target, Runtime string
	// Measured is the ratio of the medians (or, for an absolute goal, the median);
	// Spread the runtime's min / median / max and, for a ratio, the baseline's.
	Measured, Spread, Goal string
	// Met is "yes", "no" or "—" (not measured).
	Met string
	// Value is the measured number (NaN when not measured).
	Value float64
}

// Targets holds every target against the run's figures, one row per runtime.
func (r *Report) Targets() []TargetRow {
	names := map[string]string{}
	for _, b := range r.Backends {
		names[b.Key] = b.Name
	}
	for _, f := range r.Figures {
		for _, b := range f.Runtimes {
			names[b.Key] = b.Name
		}
	}
	base := r.baseline()
	var out []TargetRow
	for _, t := range r.targetList() {
		op := "≤"
		if t.atLeast {
			op = "≥"
		}
		goal := fmt.Sprintf("%s %.1f×", op, t.goal)
		if t.absolute {
			goal = fmt.Sprintf("%s %.1f s", op, t.goal/1000)
		}
		for _, k := range t.keys {
			name := names[k]
			if t.runtime != "" {
				name = t.runtime
			} else if name == "" {
				name = k
			}
			row := TargetRow{Target: t.name, Runtime: name, Goal: goal, Measured: "—", Met: "—", Value: math.NaN()}
			f := r.Figure(t.figure)
			switch {
			case t.missing != "":
				row.Spread = t.missing
			case f == nil:
				row.Spread = "not measured in this run"
			case f.Errors[k] != "":
				row.Spread = "failed (see the results)"
			case len(f.Samples[k]) == 0:
				row.Spread = "not measured in this run"
			default:
				s := Summarize(f.Samples[k])
				row.Spread = minMedMax(f.Samples[k], f.Unit)
				v := s.Median
				if t.absolute {
					row.Measured = fmt.Sprintf("%.3f s", v/1000)
				} else {
					bf := t.baseFigure
					if bf == "" {
						bf = t.figure
					}
					v = r.RatioTo(t.figure, k, bf)
					if b := r.Figure(bf); b != nil && base != nil && len(b.Samples[base.Key]) > 0 {
						row.Spread += "; runc shim " + minMedMax(b.Samples[base.Key], b.Unit)
					}
					row.Measured = fmt.Sprintf("%.2f×", v)
				}
				row.Value = v
				if !math.IsNaN(v) {
					met := v <= t.goal
					if t.atLeast {
						met = v >= t.goal
					}
					row.Met = map[bool]string{true: "yes", false: "no"}[met]
				}
			}
			out = append(out, row)
		}
	}
	return out
}

// minMedMax is a sample's min / median / max.
func minMedMax(xs []float64, unit string) string {
	s := Summarize(xs)
	return fmt.Sprintf("%s / %s / %s", num(slices.Min(xs), ""), num(s.Median, ""), num(slices.Max(xs), unit))
}
