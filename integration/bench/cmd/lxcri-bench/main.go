//go:build linux

// Command lxcri-bench runs the benchmarks of integration/bench against a private
// containerd and prints the table; with -out it also writes it as Markdown
// (docs/BENCHMARKS.md in `make bench`). It needs root, the tools of `make setup` and the
// shim of `make build` (LXCRI_SHIM_DIR, default <repo>/bin).
//
//	lxcri-bench -n 20 -churn 50 -inflight 8 -out docs/BENCHMARKS.md
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/lxcri/lxcri/integration/bench"
	"github.com/lxcri/lxcri/integration/harness"
)

func main() {
	d := bench.DefaultOptions()
	o := d
	flag.IntVar(&o.Runs, "n", d.Runs, "timed runs per runtime of each latency figure (ctr run, Go client lifecycle, exec)")
	flag.IntVar(&o.Warmup, "warmup", d.Warmup, "untimed runs per runtime before the timed ones")
	flag.IntVar(&o.Churn, "churn", d.Churn, "containers per churn round")
	flag.IntVar(&o.InFlight, "inflight", d.InFlight, "containers in flight during churn")
	flag.IntVar(&o.ChurnRounds, "churn-rounds", d.ChurnRounds, "churn rounds per runtime")
	flag.IntVar(&o.MemContainers, "mem", d.MemContainers, "containers (a shim each) measured per memory round")
	flag.IntVar(&o.MemRounds, "mem-rounds", d.MemRounds, "memory rounds per runtime")
	pods := flag.String("pods", joinInts(d.PodSizes), "sizes of the grouped pods, comma-separated")
	flag.DurationVar(&o.Settle, "settle", d.Settle, "how long the shims of a memory round run before they are measured")
	flag.StringVar(&o.LogLevel, "log-level", d.LogLevel, "containerd's log level (debug also starts the shims with -debug)")
	backends := flag.String("backends", "", "comma-separated backends besides the runc shim baseline: crun-runc,crun-crun,lxc (default all)")
	ckptSizes := flag.String("ckpt-sizes", bench.FormatSizes(d.CkptSizes), "data sizes of the checkpoint/restore figures, comma-separated, K/M/G suffixes")
	flag.IntVar(&o.CkptRounds, "ckpt-rounds", d.CkptRounds, "checkpoint/restore rounds per runtime and size")
	out := flag.String("out", "", "also write the report as Markdown to this file")
	verbose := flag.Bool("v", false, "log every ctr call of the harness")
	flag.Parse()

	var err error
	if o.PodSizes, err = parseInts(*pods); err != nil {
		log.Fatalf("-pods: %v", err)
	}
	if o.CkptSizes, err = bench.ParseSizes(*ckptSizes); err != nil {
		log.Fatalf("-ckpt-sizes: %v", err)
	}
	if *backends != "" {
		o.Backends = strings.Split(*backends, ",")
	}
	log.SetFlags(log.Ltime)
	log.SetPrefix("lxcri-bench: ")
	o.Progress = func(format string, args ...any) { log.Printf(format, args...) }
	if os.Geteuid() != 0 {
		log.Fatal("needs root (containerd, mounts, cgroups)")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tb := harness.NewProgramTB("lxcri-bench", *verbose)
	code := run(ctx, tb, o, *out)
	tb.RunCleanups()
	os.Exit(code)
}

func run(ctx context.Context, t *harness.ProgramTB, o bench.Options, out string) (code int) {
	var rep *bench.Report
	err := t.Do(func() (err error) {
		rep, err = bench.Run(ctx, t, o)
		return err
	})
	if err != nil {
		log.Printf("error: %v", err)
		return 1
	}
	fmt.Println()
	rep.WriteText(os.Stdout)
	if out != "" {
		var buf bytes.Buffer
		rep.WriteMarkdown(&buf, command())
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			log.Printf("error: %v", err)
			return 1
		}
		tmp := out + ".tmp"
		if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
			log.Printf("error: %v", err)
			return 1
		}
		if err := os.Rename(tmp, out); err != nil {
			log.Printf("error: %v", err)
			return 1
		}
		log.Printf("wrote %s", out)
	}
	if errs := rep.Errors(); len(errs) > 0 {
		log.Printf("finished with %d failures (in the table as \"error\")", len(errs))
		return 1
	}
	return 0
}

// command is the command line that produced the report, as one would type it.
func command() string {
	var q []string
	for _, a := range os.Args[1:] {
		q = append(q, shellQuote(a))
	}
	self := "go run ./integration/bench/cmd/lxcri-bench"
	if !strings.Contains(os.Args[0], "go-build") { // a built binary, not `go run`
		self = filepath.Base(os.Args[0])
	}
	cmd := strings.TrimSpace(self + " " + strings.Join(q, " "))
	if os.Getenv("MAKELEVEL") != "" {
		return "make bench\n# which runs: LXCRI_SHIM_DIR=$PWD/bin " + cmd
	}
	return cmd
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ',' || r == '=' || r == ':' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(xs []int) string {
	var s []string
	for _, x := range xs {
		s = append(s, strconv.Itoa(x))
	}
	return strings.Join(s, ",")
}
