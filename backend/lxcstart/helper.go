package lxcstart

import (
	"os"
	"strconv"
)

// Name is the helper's file name.
const Name = "lxcri-start"

// The helper's file descriptors: what each is for is in the helper's source.
const (
	// ReportFD is where the helper writes its report (see ParseReport).
	ReportFD = 3
	// ConsoleFD is the socket the exec mode sends the process's pty master over.
	ConsoleFD = 4
	// GateFD holds the start mode's init before its program: a byte releases it.
	GateFD = 5
	// SpecFD is the pipe the helper reads its spec record from.
	SpecFD = 6
)

// Args is the helper's whole command line for mode (start or exec) on the container
// name of lxcpath: everything else comes in the spec record.
func Args(mode, name, lxcpath string) []string {
	return []string{mode, name, lxcpath, "--spec-fd", strconv.Itoa(SpecFD)}
}

// Executable tells whether p is a regular file with an execute bit, as a helper to run
// must be.
func Executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
