package lxcstart

import (
	"strconv"
	"strings"
)

// ReportKind is what one line of the helper's report says.
type ReportKind int

const (
	// Other is a line the shim does not know: ignored.
	Other ReportKind = iota
	// Pid: the process exists (it has not run its program yet); Report.Pid is its host pid.
	Pid
	// Error: the helper failed before the process ran; Report.Msg says why.
	Error
	// Invalid: liblxc refused the container's configuration; Report.Msg says why.
	Invalid
)

// Report is one line of the helper's report (ReportFD).
type Report struct {
	Kind ReportKind
	Pid  int
	Msg  string
}

// ParseReport reads one line of the report, without its newline: "pid N", "error MSG"
// or "invalid MSG". A pid line whose number is not a positive integer is Other.
func ParseReport(line string) Report {
	switch {
	case strings.HasPrefix(line, "pid "):
		if n, err := strconv.Atoi(strings.TrimSpace(line[4:])); err == nil && n > 0 {
			return Report{Kind: Pid, Pid: n}
		}
	case strings.HasPrefix(line, "error "):
		return Report{Kind: Error, Msg: line[6:]}
	case strings.HasPrefix(line, "invalid "):
		return Report{Kind: Invalid, Msg: line[8:]}
	}
	return Report{Kind: Other}
}
