//go:build linux

// Command lxcri is the operator's tool beside containerd: is this host ready for each
// backend (check), which containers do the shims manage (list, state), what configuration
// does a container get (config), which checkpoints can go (prune), and which build is
// this (version).
//
// Human output by default; --json for scripts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lxcri/lxcri/runtime"
)

const usage = `usage: lxcri [--config FILE] COMMAND [flags]

Commands:
  check            host readiness per backend: ok, warn or fail, with a fix for each
  list             containers the lxcri shims manage, per backend, with their ZFS dataset
  state ID         one container's state (-n NAMESPACE when the id is in several)
  config           the effective configuration: host file, runtime options, annotations
  prune            free the ZFS datasets of checkpoints no containerd checkpoint image names
  version          lxcri's version, liblxc's, Go's

Global flags:
  --config FILE    lxcri's host configuration (default $LXCRI_CONFIG, else /etc/lxcri/config.toml)

Every command takes --json. "lxcri COMMAND -h" lists a command's flags.
`

// exitError carries a command's exit status (e.g. check's 1 for a failed check) without
// printing anything more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(int(ee))
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "lxcri: %v\n", err)
		os.Exit(1)
	}
}

// run is main without the process: args without the program name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	global := flag.NewFlagSet("lxcri", flag.ContinueOnError)
	global.SetOutput(stderr)
	global.Usage = func() { fmt.Fprint(stderr, usage) }
	configPath := global.String("config", "", "lxcri's host configuration file")
	if err := global.Parse(args); err != nil {
		return err
	}
	if *configPath != "" {
		// the shim reads the host file through LXCRI_CONFIG; so does this process
		if err := os.Setenv(runtime.ConfigPathEnv, *configPath); err != nil {
			return err
		}
	}
	rest := global.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError(2)
	}
	cmd, cargs := rest[0], rest[1:]
	switch cmd {
	case "check":
		return cmdCheck(ctx, cargs, stdout, stderr)
	case "list", "ls":
		return cmdList(ctx, cargs, stdout, stderr)
	case "state":
		return cmdState(ctx, cargs, stdout, stderr)
	case "config":
		return cmdConfig(ctx, cargs, stdout, stderr)
	case "prune":
		return cmdPrune(ctx, cargs, stdout, stderr)
	case "version":
		return cmdVersion(ctx, cargs, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "lxcri: unknown command %q (commands: %s)\n", cmd, strings.Join([]string{"check", "list", "state", "config", "prune", "version"}, ", "))
		return exitError(2)
	}
}

// newFlags makes a command's flag set with the --json flag every command has.
func newFlags(name, args string, stderr io.Writer) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("lxcri "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: lxcri %s [flags]%s\n", name, args)
		fs.PrintDefaults()
	}
	return fs, fs.Bool("json", false, "print JSON instead of text")
}

// parseInterspersed parses flags before and after positional arguments (`state ID --json`)
// and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
