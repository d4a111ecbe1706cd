package lxcstart

import (
	"bytes"
	"os"
	"strings"

	"github.com/lxcri/lxcri/runtime"
)

// The spec record carries everything the helper's start and exec modes take from the
// container's spec (environment, args, user, capabilities, rlimits, ...) over an inherited
// pipe (SpecFD), so that none of it is on the helper's command line: /proc/PID/cmdline is
// world-readable, and the start helper lives as long as the container (it is its monitor).
//
// Format (decoded by spec_read in the helper): NUL-terminated strings,
//
//	"lxcri-start-spec-v1" (KEY VALUE)... "end"
//
// A value can hold anything but NUL (which execve(2) could not pass either).
const (
	SpecMagic = "lxcri-start-spec-v1"
	SpecEnd   = "end"
	// SpecMax is the largest record the helper reads (its SPEC_MAX).
	SpecMax = 16 << 20
)

// Spec builds one spec record.
type Spec struct {
	b   bytes.Buffer
	err error
}

// NewSpec starts a record.
func NewSpec() *Spec {
	s := &Spec{}
	s.b.WriteString(SpecMagic)
	s.b.WriteByte(0)
	return s
}

// Add appends KEY VALUE; field names the spec field the value came from, for the error
// a value holding NUL is.
func (s *Spec) Add(field, key, value string) {
	if s.err != nil {
		return
	}
	if strings.IndexByte(value, 0) >= 0 {
		s.err = runtime.FieldErrorf(field, "contains NUL")
		return
	}
	s.b.WriteString(key)
	s.b.WriteByte(0)
	s.b.WriteString(value)
	s.b.WriteByte(0)
}

// Encode ends the record and returns it: the first error Add met, or an error naming
// the process when the record is larger than the helper reads.
func (s *Spec) Encode() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	s.b.WriteString(SpecEnd)
	s.b.WriteByte(0)
	if s.b.Len() > SpecMax {
		return nil, runtime.FieldErrorf("process", "args and env take %d bytes, more than the %d the helper takes", s.b.Len(), SpecMax)
	}
	return s.b.Bytes(), nil
}

// SendSpec writes the record into the pipe's write end and closes it; the helper reads
// it to its end before it does anything else. A helper that died before reading makes
// the write fail (EPIPE), which its exit reports.
func SendSpec(w *os.File, data []byte) {
	w.Write(data)
	w.Close()
}
