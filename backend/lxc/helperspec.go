package lxc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The spec record carries everything lxcri-start's start and exec modes take from the
// container's spec (environment, args, user, capabilities, rlimits, ...) over an inherited
// pipe, so that none of it is on the helper's command line: /proc/PID/cmdline is
// world-readable, and the start helper lives as long as the container (it is its monitor).
// The helper's argv holds only the mode, the container's name, the lxcpath and the fd.
//
// Format (decoded by spec_read in helper/lxcri-start.c): NUL-terminated strings,
//
//	"lxcri-start-spec-v1" (KEY VALUE)... "end"
//
// A value can hold anything but NUL (which execve(2) could not pass either).
const (
	helperSpecMagic = "lxcri-start-spec-v1"
	helperSpecEnd   = "end"
	// helperSpecFD is the helper's fd of the record's pipe (3: report, 4: console
	// socket, 5: gate).
	helperSpecFD = 6
	// helperSpecMax is the largest record the helper reads (its SPEC_MAX).
	helperSpecMax = 16 << 20
)

// helperSpec builds one record.
type helperSpec struct {
	b   bytes.Buffer
	err error
}

func newHelperSpec() *helperSpec {
	s := &helperSpec{}
	s.b.WriteString(helperSpecMagic)
	s.b.WriteByte(0)
	return s
}

// add appends KEY VALUE; field names the spec field the value came from, for the error
// a value holding NUL is.
func (s *helperSpec) add(field, key, value string) {
	if s.err != nil {
		return
	}
	if strings.IndexByte(value, 0) >= 0 {
		s.err = fieldErr(field, "contains NUL")
		return
	}
	s.b.WriteString(key)
	s.b.WriteByte(0)
	s.b.WriteString(value)
	s.b.WriteByte(0)
}

// encode ends the record and returns it.
func (s *helperSpec) encode() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	s.b.WriteString(helperSpecEnd)
	s.b.WriteByte(0)
	if s.b.Len() > helperSpecMax {
		return nil, fieldErr("process", "args and env take %d bytes, more than the %d the helper takes", s.b.Len(), helperSpecMax)
	}
	return s.b.Bytes(), nil
}

// helperArgs is the helper's whole command line for mode (start or exec).
func helperArgs(mode, name, lxcpath string) []string {
	return []string{mode, name, lxcpath, "--spec-fd", strconv.Itoa(helperSpecFD)}
}

// sendSpec writes the record into the pipe's write end and closes it; the helper reads
// it to its end before it does anything else. A helper that died before reading makes
// the write fail (EPIPE), which its exit reports.
func sendSpec(w *os.File, data []byte) {
	w.Write(data)
	w.Close()
}

// initSpec is the init's record for `lxcri-start start`.
func initSpec(in *InitProcess) ([]byte, error) {
	s := newHelperSpec()
	s.add("process.user.umask", "umask", strconv.FormatUint(uint64(in.Umask), 8))
	if in.CapInheritable != 0 {
		s.add("process.capabilities.inheritable", "cap-inheritable", strconv.FormatUint(in.CapInheritable, 16))
	}
	for i, e := range in.Env {
		s.add(fmt.Sprintf("process.env[%d]", i), "env", e)
	}
	for i, a := range in.Args {
		s.add(fmt.Sprintf("process.args[%d]", i), "arg", a)
	}
	return s.encode()
}
