package lxc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/backend/lxcstart"
	"github.com/lxcri/lxcri/runtime"
)

// DefaultLogLevel is liblxc's log level when [lxc] log_level is not set.
const DefaultLogLevel = "ERROR"

// settings is the [lxc] table with defaults applied and checked.
type settings struct {
	helper   string
	logLevel string
}

var logLevels = []string{"TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "CRIT", "ALERT", "FATAL"}

// InstallBinDir is where `make install` puts the shim and the helper (PREFIX/bin); the
// Makefile sets it at build time to its PREFIX.
var InstallBinDir = "/usr/local/bin"

// helperCandidate is one place the start helper is looked for.
type helperCandidate struct {
	path, why string
}

// helperCandidates lists, in order, where the start helper is looked for when [lxc]
// helper is not set: beside the shim binary (its real path, then the path it was started
// by, as containerd may run it through a symlink or a copy), each folder of PATH, and the
// install prefix.
func helperCandidates(exe, argv0, pathEnv string) []helperCandidate {
	var out []helperCandidate
	seen := map[string]bool{}
	add := func(dir, why string) {
		if dir == "" || !filepath.IsAbs(dir) {
			return
		}
		p := filepath.Join(dir, lxcstart.Name)
		if !seen[p] {
			seen[p] = true
			out = append(out, helperCandidate{p, why})
		}
	}
	if exe != "" {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		add(filepath.Dir(exe), "beside the shim "+exe)
	}
	if filepath.IsAbs(argv0) {
		add(filepath.Dir(argv0), "beside the shim as started, "+argv0)
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		add(dir, "on PATH")
	}
	add(InstallBinDir, "the install prefix")
	return out
}

// findHelper returns the first executable candidate, or an error naming every place
// looked in.
func findHelper(cands []helperCandidate) (string, error) {
	var looked []string
	for _, c := range cands {
		if lxcstart.Executable(c.path) {
			return c.path, nil
		}
		looked = append(looked, fmt.Sprintf("%s (%s)", c.path, c.why))
	}
	return "", fmt.Errorf("lxc backend: start helper %s not found; looked in %s; install it beside the shim (make install) or set [lxc] helper in %s: %w",
		lxcstart.Name, strings.Join(looked, ", "), runtime.DefaultConfigPath, errdefs.ErrFailedPrecondition)
}

// LocateHelper finds the start helper the way a shim at shimExe would when [lxc] helper is
// not set; the error names every place looked in.
func LocateHelper(shimExe string) (string, error) {
	return findHelper(helperCandidates(shimExe, "", os.Getenv("PATH")))
}

func resolveSettings(c runtime.LXCConfig) (*settings, error) {
	s := &settings{helper: c.Helper, logLevel: strings.ToUpper(c.LogLevel)}
	if s.helper != "" {
		// The operator's choice is the helper, or an error: another one found elsewhere
		// could be of another build.
		if !filepath.IsAbs(s.helper) {
			return nil, fmt.Errorf("lxc backend: [lxc] helper %q is not an absolute path: %w", s.helper, errdefs.ErrInvalidArgument)
		}
		if !lxcstart.Executable(s.helper) {
			return nil, fmt.Errorf("lxc backend: start helper %s ([lxc] helper) is missing or not executable: %w", s.helper, errdefs.ErrFailedPrecondition)
		}
	} else {
		exe, _ := os.Executable()
		h, err := findHelper(helperCandidates(exe, os.Args[0], os.Getenv("PATH")))
		if err != nil {
			return nil, err
		}
		s.helper = h
	}
	if s.logLevel == "" {
		s.logLevel = DefaultLogLevel
	}
	ok := false
	for _, l := range logLevels {
		if l == s.logLevel {
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("lxc backend: [lxc] log_level %q is not one of %s: %w", c.LogLevel, strings.Join(logLevels, ", "), errdefs.ErrInvalidArgument)
	}
	return s, nil
}
