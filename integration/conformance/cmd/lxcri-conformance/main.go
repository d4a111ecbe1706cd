//go:build linux

// Command lxcri-conformance runs containerd's client suite and critest against one runtime
// (run), or writes the comparison of every stored run (report). `make conformance` runs
// one suite and runtime at a time and then the report.
//
//	lxcri-conformance run -suite containerd-client -runtime lxc -out results/
//	lxcri-conformance report -in results/ -out docs/CONFORMANCE.md
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
	"strings"
	"syscall"
	"time"

	"github.com/lxcri/lxcri/integration/conformance"
	"github.com/lxcri/lxcri/integration/harness"
)

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("lxcri-conformance: ")
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "run":
		os.Exit(run(os.Args[2:]))
	case "report":
		os.Exit(report(os.Args[2:]))
	case "reparse":
		os.Exit(reparse(os.Args[2:]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: %s run -suite SUITE -runtime RUNTIME -out DIR [-focus RE] [-skip RE] [-timeout D]\n", os.Args[0])
	fmt.Fprintf(os.Stderr, "       %s report -in DIR -out FILE [-reasons FILE]\n", os.Args[0])
	fmt.Fprintf(os.Stderr, "       %s reparse -in DIR   (results again from the stored raw output)\n", os.Args[0])
	fmt.Fprintf(os.Stderr, "suites: %s; runtimes: %s\n", strings.Join(conformance.Suites, ", "), runtimeKeys())
	os.Exit(2)
}

func runtimeKeys() string {
	var ks []string
	for _, r := range conformance.Runtimes() {
		ks = append(ks, r.Key)
	}
	return strings.Join(ks, ", ")
}

func run(args []string) int {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	suite := fs.String("suite", "", "suite to run: "+strings.Join(conformance.Suites, ", "))
	rt := fs.String("runtime", "", "runtime to test: "+runtimeKeys())
	out := fs.String("out", "", "folder for the results and the suites' output")
	focus := fs.String("focus", "", "regular expression of the tests to run (-test.run, -ginkgo.focus)")
	skip := fs.String("skip", "", "regular expression of tests not to run (-test.skip, -ginkgo.skip)")
	timeout := fs.Duration("timeout", 9*time.Minute, "bound of the suite binary's run")
	verbose := fs.Bool("v", false, "log the harness's messages")
	_ = fs.Parse(args)
	if *suite == "" || *rt == "" || *out == "" {
		usage()
	}
	r, err := conformance.RuntimeByKey(*rt)
	if err != nil {
		log.Print(err)
		return 2
	}
	if os.Geteuid() != 0 {
		log.Print("needs root (containerd, mounts, cgroups, zfs-fuse)")
		return 1
	}
	tools, err := toolsDir()
	if err != nil {
		log.Print(err)
		return 1
	}
	abs, err := filepath.Abs(*out)
	if err != nil {
		log.Print(err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tb := harness.NewProgramTB("lxcri-conformance", *verbose)
	var res *conformance.Result
	err = tb.Do(func() (err error) {
		res, err = conformance.Run(ctx, tb, conformance.Options{
			Suite: *suite, Runtime: r, Focus: *focus, Skip: *skip, Timeout: *timeout,
			OutDir: abs, ToolsDir: tools,
			Progress: func(format string, args ...any) { log.Printf(format, args...) },
		})
		return err
	})
	tb.RunCleanups()
	if res != nil {
		p, f, s := res.Counts()
		log.Printf("%s on %s: %d passed, %d failed, %d skipped in %s", res.Suite, res.Runtime, p, f, s, res.Duration)
	}
	if err != nil {
		log.Printf("error: %v", err)
		return 1
	}
	return 0
}

// toolsDir is the tools folder of setup-host.sh and setup-conformance.sh.
func toolsDir() (string, error) {
	if d := os.Getenv("LXCRI_TOOLS_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "bin", conformance.CritestBinary)); err == nil {
			return filepath.Join(d, "bin"), nil
		}
		return d, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "lxcri", "tools", "bin"), nil
}

func report(args []string) int {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "", "folder of the results written by run")
	out := fs.String("out", "", "Markdown file to write")
	reasonsPath := fs.String("reasons", "", "file of reasons for the differences (suite<TAB>runtime<TAB>test<TAB>reason)")
	_ = fs.Parse(args)
	if *in == "" || *out == "" {
		usage()
	}
	results, err := conformance.LoadResults(*in)
	if err != nil {
		log.Print(err)
		return 1
	}
	if len(results) == 0 {
		log.Printf("no results in %s", *in)
		return 1
	}
	reasons := conformance.Reasons{}
	if *reasonsPath != "" {
		if reasons, err = conformance.LoadReasons(*reasonsPath); err != nil {
			log.Print(err)
			return 1
		}
	}
	var buf bytes.Buffer
	if err := conformance.WriteReport(&buf, results, conformance.RuncShim, reasons, "make conformance"); err != nil {
		log.Print(err)
		return 1
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		log.Print(err)
		return 1
	}
	if err := os.Rename(tmp, *out); err != nil {
		log.Print(err)
		return 1
	}
	log.Printf("wrote %s from %d runs", *out, len(results))
	return 0
}

// reparse derives every stored Result's tests again from the suite's raw output kept
// beside it (after a change of the parsers), keeping the rest of the Result.
func reparse(args []string) int {
	fs := flag.NewFlagSet("reparse", flag.ExitOnError)
	in := fs.String("in", "", "folder of the results written by run")
	_ = fs.Parse(args)
	if *in == "" {
		usage()
	}
	results, err := conformance.LoadResults(*in)
	if err != nil {
		log.Print(err)
		return 1
	}
	for _, r := range results {
		if err := conformance.Reparse(r, *in); err != nil {
			log.Print(err)
			return 1
		}
		if err := r.Save(*in); err != nil {
			log.Print(err)
			return 1
		}
		p, f, s := r.Counts()
		log.Printf("%s on %s: %d passed, %d failed, %d skipped", r.Suite, r.Runtime, p, f, s)
	}
	return 0
}
