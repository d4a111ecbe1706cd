package proxmoxlxc

import (
	"bytes"
	"strings"
)

// HelperBinary runs a task's processes in its CT: lxcri-start's exec mode, liblxc's
// attach in a single-threaded process of its own (the lxc backend's helper), found beside
// the shim unless [lxc] helper names it.
const HelperBinary = "lxcri-start"

// The spec record is how lxcri-start takes a process's spec (see its source): over an
// inherited pipe, as NUL-terminated strings "lxcri-start-spec-v1" (KEY VALUE)... "end".
const (
	specMagic = "lxcri-start-spec-v1"
	specEnd   = "end"
	specFD    = 6        // the helper's fd of the record (3: report, 4: console socket)
	specMax   = 16 << 20 // the largest record the helper reads
)

type specRecord struct {
	b   bytes.Buffer
	err error
}

func newSpecRecord() *specRecord {
	r := &specRecord{}
	r.b.WriteString(specMagic)
	r.b.WriteByte(0)
	return r
}

// add appends KEY VALUE; field names the spec field the value came from.
func (r *specRecord) add(field, key, value string) {
	if r.err != nil {
		return
	}
	if strings.IndexByte(value, 0) >= 0 {
		r.err = fieldErr(field, "contains NUL")
		return
	}
	r.b.WriteString(key)
	r.b.WriteByte(0)
	r.b.WriteString(value)
	r.b.WriteByte(0)
}

func (r *specRecord) encode() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.b.WriteString(specEnd)
	r.b.WriteByte(0)
	if r.b.Len() > specMax {
		return nil, fieldErr("process", "args and env take %d bytes, more than the %d the helper takes", r.b.Len(), specMax)
	}
	return r.b.Bytes(), nil
}
