//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
)

// Fact is one line of the machine description.
type Fact struct{ Name, Value string }

// Figure is one measured quantity, with its samples per backend key.
type Figure struct {
	Group, ID, Name, Unit string
	// HigherBetter is true for throughputs.
	HigherBetter bool
	// NA, when set, is printed instead of numbers.
	NA      string
	Samples map[string][]float64
	// Errors holds, per backend key, why the backend's samples stopped.
	Errors map[string]string
	// Runtimes, when set, are the rows of the figure instead of the measured backends
	// (section 5 compares lxcri on ZFS with the runc shim only).
	Runtimes []*Backend
	// Size is the data size of a checkpoint figure (0 for others).
	Size int64
}

func (f *Figure) add(b *Backend, v float64) {
	f.Samples[b.Key] = append(f.Samples[b.Key], v)
}

// Report is the result of a run.
type Report struct {
	Options  Options
	Started  time.Time
	Duration time.Duration
	Facts    []Fact
	// Backends are all selected backends, baseline first; those with Unavailable set
	// were not measured.
	Backends []*Backend
	Figures  []*Figure
	// Ran are the keys of the measurements that ran, in order.
	Ran []string
	// Notes are things seen during the run that bear on the figures.
	Notes []string
}

func (r *Report) figure(group, id, name, unit string, higher bool) *Figure {
	f := &Figure{Group: group, ID: id, Name: name, Unit: unit, HigherBetter: higher, Samples: map[string][]float64{}, Errors: map[string]string{}}
	r.Figures = append(r.Figures, f)
	return f
}

func (r *Report) addNA(group, id, name, text string) {
	f := r.figure(group, id, name, "", false)
	f.NA = text
}

// Figure returns the figure with the given id, or nil.
func (r *Report) Figure(id string) *Figure {
	for _, f := range r.Figures {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// Errors lists the failures of backends during the measurements, one per backend and
// step ("" figures merged).
func (r *Report) Errors() []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range r.Figures {
		bs := r.Backends
		if f.Runtimes != nil {
			bs = f.Runtimes
		}
		for _, b := range bs {
			e := f.Errors[b.Key]
			if e == "" || seen[b.Key+e] {
				continue
			}
			seen[b.Key+e] = true
			out = append(out, fmt.Sprintf("%s failed in %s: %s", b.Name, f.Group, strings.Join(strings.Fields(e), " ")))
		}
	}
	return out
}

// Available returns the measured backends, baseline first.
func (r *Report) Available() []*Backend {
	var out []*Backend
	for _, b := range r.Backends {
		if b.Unavailable == "" {
			out = append(out, b)
		}
	}
	return out
}

// runtimesOf are the rows of figure f.
func (r *Report) runtimesOf(f *Figure) []*Backend {
	if f.Runtimes != nil {
		return f.Runtimes
	}
	return r.Available()
}

func (r *Report) baseline() *Backend {
	for _, b := range r.Backends {
		if b.Baseline {
			return b
		}
	}
	return nil
}

// Ratio is the median of backend key over the baseline's median for figure id (NaN when
// either is missing).
func (r *Report) Ratio(id, key string) float64 { return r.RatioTo(id, key, id) }

// RatioTo is the median of backend key in figure id over the baseline's median in figure
// baseID.
func (r *Report) RatioTo(id, key, baseID string) float64 {
	f, bf, base := r.Figure(id), r.Figure(baseID), r.baseline()
	if f == nil || bf == nil || base == nil {
		return math.NaN()
	}
	if f.Errors[key] != "" || bf.Errors[base.Key] != "" {
		return math.NaN()
	}
	a, b := Summarize(f.Samples[key]), Summarize(bf.Samples[base.Key])
	if a.N == 0 || b.N == 0 || b.Median == 0 {
		return math.NaN()
	}
	return a.Median / b.Median
}

// row is one line of the results table.
type row struct{ group, measurement, runtime, median, spread, n, ratio string }

func (r *Report) rows() []row {
	var out []row
	for _, f := range r.Figures {
		if f.NA != "" {
			out = append(out, row{f.Group, f.Name, "all", f.NA, "", "", ""})
			continue
		}
		for i, b := range r.runtimesOf(f) {
			name := f.Name
			if i > 0 {
				name = ""
			}
			s := Summarize(f.Samples[b.Key])
			if f.Errors[b.Key] != "" {
				out = append(out, row{f.Group, name, b.Name, "error", "see below", fmt.Sprint(s.N), ""})
				continue
			}
			if s.N == 0 {
				out = append(out, row{f.Group, name, b.Name, "—", "", "0", ""})
				continue
			}
			ratio := "1.00 (baseline)"
			if !b.Baseline {
				ratio = "—" // no baseline in this figure
				if v := r.Ratio(f.ID, b.Key); !math.IsNaN(v) {
					ratio = fmt.Sprintf("%.2f×", v)
				}
			}
			out = append(out, row{
				f.Group, name, b.Name,
				num(s.Median, f.Unit),
				fmt.Sprintf("%s–%s (%s)", num(s.Lo, ""), num(s.Hi, ""), s.Spread),
				fmt.Sprint(s.N), ratio,
			})
		}
	}
	return out
}

// num formats a value with precision that suits its size.
func num(v float64, unit string) string {
	var s string
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		s = "—"
	case a >= 100:
		s = fmt.Sprintf("%.0f", v)
	case a >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.2f", v)
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

func (r *Report) unavailable() []string {
	var out []string
	for _, b := range r.Backends {
		if b.Unavailable != "" {
			out = append(out, fmt.Sprintf("%s: not measured: %s", b.Name, b.Unavailable))
		}
	}
	return out
}

// WriteText writes the report as aligned plain text.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "lxcri benchmarks, %s (took %s)\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Duration.Round(time.Second))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, f := range r.Facts {
		fmt.Fprintf(tw, "%s\t%s\n", f.Name, f.Value)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASUREMENT\tRUNTIME\tMEDIAN\tSPREAD\tN\tVS RUNC SHIM")
	group := ""
	for _, x := range r.rows() {
		if x.group != group {
			group = x.group
			fmt.Fprintf(tw, "%s\t\t\t\t\t\n", strings.ToUpper(group))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", x.measurement, x.runtime, x.median, x.spread, x.n, x.ratio)
	}
	tw.Flush()
	for _, u := range r.unavailable() {
		fmt.Fprintln(w, u)
	}
	for _, e := range r.Errors() {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET (reported, not asserted)\tRUNTIME\tMEASURED\tSPREAD (MIN / MEDIAN / MAX)\tGOAL\tMET")
	for _, t := range r.Targets() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Target, t.Runtime, t.Measured, t.Spread, t.Goal, t.Met)
	}
	tw.Flush()
}

// templates are the Markdown report and the method of each measurement.
//
//go:embed templates/*.md.tmpl
var templates embed.FS

var mdTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"md":    mdEscape,
	"sizes": func(xs []int64) string { return strings.Join(sizeLabels(xs), ", ") },
}).ParseFS(templates, "templates/*.md.tmpl"))

// mdRow is a line of the results table as the template sees it.
type mdRow struct {
	First                                                 bool // the first of its group
	Group, Measurement, Runtime, Median, Spread, N, Ratio string
}

// mdData is what templates/report.md.tmpl renders.
type mdData struct {
	Command, Started, Duration string
	Facts                      []Fact
	Targets                    []TargetRow
	Rows                       []mdRow
	Notes                      []string
	Methods                    []string
}

// WriteMarkdown writes the report as a Markdown document (templates/report.md.tmpl);
// command is the command line that produced it.
func (r *Report) WriteMarkdown(w io.Writer, command string) error {
	d := mdData{
		Command:  command,
		Started:  r.Started.UTC().Format("2006-01-02 15:04 MST"),
		Duration: r.Duration.Round(time.Second).String(),
		Facts:    r.Facts,
		Targets:  r.Targets(),
	}
	group := ""
	for _, x := range r.rows() {
		d.Rows = append(d.Rows, mdRow{x.group != group, x.group, x.measurement, x.runtime, x.median, x.spread, x.n, x.ratio})
		group = x.group
	}
	d.Notes = r.unavailable()
	for _, e := range r.Errors() {
		d.Notes = append(d.Notes, "**Error**: "+mdEscape(e))
	}
	d.Notes = append(d.Notes, r.Notes...)
	for _, name := range append(append([]string{"setup"}, r.Ran...), "host") {
		var b bytes.Buffer
		if err := mdTemplates.ExecuteTemplate(&b, name, r.Options); err != nil {
			return fmt.Errorf("method of %s: %w", name, err)
		}
		d.Methods = append(d.Methods, b.String())
	}
	return mdTemplates.ExecuteTemplate(w, "report.md.tmpl", d)
}

func sizeLabels(xs []int64) []string {
	var out []string
	for _, x := range xs {
		out = append(out, sizeLabel(x))
	}
	return out
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// ---- machine facts -------------------------------------------------------------------

func gatherFacts(env *harness.Env, logLevel, cgMode string) []Fact {
	var fs []Fact
	add := func(k, v string) { fs = append(fs, Fact{k, v}) }
	model := grepValue("/proc/cpuinfo", "model name")
	add("CPU", fmt.Sprintf("%s, %d cores online", model, runtime.NumCPU()))
	if mt := grepValue("/proc/meminfo", "MemTotal"); mt != "" {
		var kb float64
		if _, err := fmt.Sscanf(mt, "%f kB", &kb); err == nil {
			mt = fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
		add("Memory", mt)
	}
	add("Kernel", readTrim("/proc/sys/kernel/osrelease"))
	if os := strings.Trim(grepValueSep("/etc/os-release", "PRETTY_NAME", "="), `"`); os != "" {
		add("OS", os)
	}
	add("cgroups", cgMode)
	add("containerd", firstLine(cmdOut(filepath.Join(env.ToolsDir, "containerd"), "--version"))+fmt.Sprintf(" (log level %s)", logLevel))
	add("containerd-shim-runc-v2", shimVersion(filepath.Join(env.ToolsDir, "containerd-shim-runc-v2")))
	lx := shimVersion(filepath.Join(env.ShimDir, harness.ShimBinary))
	if rev := gitRev(); rev != "" {
		lx += ", source " + rev
	}
	add(harness.ShimBinary, lx)
	add("runc", firstLine(cmdOut("runc", "--version")))
	add("crun", firstLine(cmdOut("crun", "--version")))
	if v := firstLine(cmdOut("lxc-start", "--version")); v != "" {
		add("lxc", "lxc "+v)
	}
	add("Go", runtime.Version())
	if la := strings.Fields(readTrim("/proc/loadavg")); len(la) >= 3 {
		add("Load average at start", strings.Join(la[:3], " "))
	}
	if p := cpuPressure(); p != "" {
		add("CPU pressure at start", p)
	}
	return fs
}

// cpuPressure is the share of time some task waited for a CPU (PSI), over 10 s and 60 s.
func cpuPressure() string {
	for _, l := range strings.Split(readTrim("/proc/pressure/cpu"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "some" {
			return fmt.Sprintf("%s%%, %s%% (some avg10, avg60)", strings.TrimPrefix(f[1], "avg10="), strings.TrimPrefix(f[2], "avg60="))
		}
	}
	return ""
}

func cgroupMode() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "v2 (unified)"
	}
	b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	if err != nil {
		return "v1"
	}
	s := "v1 hybrid, cgroup2 holds no controller"
	if c := strings.TrimSpace(string(b)); c != "" {
		s = "v1 hybrid, cgroup2 holds " + c
	}
	if u := unmountedV1(); len(u) > 0 {
		s += "; v1 hierarchy " + strings.Join(u, ", ") + " exists but is not mounted (left by an earlier hugetlb mount)"
	}
	return s
}

// unmountedV1 lists the v1 controllers this process is in (/proc/self/cgroup) whose
// hierarchy is mounted nowhere in its mount namespace.
func unmountedV1() []string {
	mounted := map[string]bool{}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		f := strings.Fields(l)
		for i := 6; i+3 < len(f); i++ {
			if f[i] == "-" && f[i+1] == "cgroup" {
				for _, o := range strings.Split(f[i+3], ",") {
					mounted[o] = true
				}
			}
		}
	}
	var out []string
	cg, _ := os.ReadFile("/proc/self/cgroup")
	for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 || parts[0] == "0" || parts[1] == "" {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if !mounted[c] {
				out = append(out, c)
			}
		}
	}
	return out
}

func shimVersion(bin string) string {
	out := cmdOut(bin, "-v")
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return firstLine(out)
}

func gitRev() string {
	root := harness.RepoRoot()
	if root == "" {
		return ""
	}
	rev := strings.TrimSpace(cmdOut("git", "-C", root, "rev-parse", "--short", "HEAD"))
	if rev == "" {
		return ""
	}
	if strings.TrimSpace(cmdOut("git", "-C", root, "status", "--porcelain", "--untracked-files=no")) != "" {
		rev += " + uncommitted changes"
	}
	return rev
}

func cmdOut(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil && len(out) == 0 {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

func grepValue(path, key string) string { return grepValueSep(path, key, ":") }

func grepValueSep(path, key, sep string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), sep)
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
