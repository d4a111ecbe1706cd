package lxc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
)

// HelperName is the start helper's file name; by default it sits beside the shim binary.
const HelperName = "lxcri-start"

// DefaultLogLevel is liblxc's log level when [lxc] log_level is not set.
const DefaultLogLevel = "ERROR"

// settings is the [lxc] table with defaults applied and checked.
type settings struct {
	helper   string
	logLevel string
}

var logLevels = []string{"TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "CRIT", "ALERT", "FATAL"}

// DefaultHelper is lxcri-start beside the running executable.
func DefaultHelper() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(exe), HelperName), nil
}

func resolveSettings(c runtime.LXCConfig) (*settings, error) {
	s := &settings{helper: c.Helper, logLevel: strings.ToUpper(c.LogLevel)}
	if s.helper == "" {
		h, err := DefaultHelper()
		if err != nil {
			return nil, fmt.Errorf("lxc backend: locate %s: %w", HelperName, err)
		}
		s.helper = h
	}
	if !filepath.IsAbs(s.helper) {
		return nil, fmt.Errorf("lxc backend: [lxc] helper %q is not an absolute path: %w", s.helper, errdefs.ErrInvalidArgument)
	}
	fi, err := os.Stat(s.helper)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("lxc backend: start helper %s is missing or not executable (build it with make, or set [lxc] helper): %w", s.helper, errdefs.ErrFailedPrecondition)
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
