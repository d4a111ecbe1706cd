package pvesim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// FaultKind names what an injected fault does.
type FaultKind string

// The fault kinds.
const (
	// FaultLatency delays the request by Delay, then serves it normally.
	FaultLatency FaultKind = "latency"
	// FaultError answers Status (default 500) with Message, without serving the request.
	FaultError FaultKind = "error"
	// FaultTaskFail serves the request, but the task it starts fails with Message without
	// doing its work.
	FaultTaskFail FaultKind = "task-fail"
	// FaultTaskHang serves the request, but the task it starts never ends (until the
	// emulator stops).
	FaultTaskHang FaultKind = "task-hang"
	// FaultDrop closes the connection without an answer.
	FaultDrop FaultKind = "drop"
	// FaultUnauthorized answers 401 "authentication failure", after the auth delay.
	FaultUnauthorized FaultKind = "unauthorized"
)

// Fault is one injected fault. It applies to the requests whose method and path match,
// Times times (0: until cleared).
type Fault struct {
	// Method is the HTTP method, or empty for any.
	Method string `json:"method,omitempty"`
	// Path is a regular expression matched against the request path below /api2/json,
	// e.g. "^/nodes/[^/]+/lxc$"; empty matches every path.
	Path string `json:"path,omitempty"`
	// Kind is what the fault does.
	Kind FaultKind `json:"kind"`
	// Delay is the latency of FaultLatency, in Go duration syntax in JSON ("250ms").
	Delay Duration `json:"delay,omitempty"`
	// Status is the HTTP status of FaultError: 500..599 (default 500), or 403 for a token
	// that lacks a privilege (PVE's message: "Permission check failed (PATH, PRIVILEGE)").
	Status int `json:"status,omitempty"`
	// Message is the error message of FaultError and FaultTaskFail.
	Message string `json:"message,omitempty"`
	// Times is how many requests the fault applies to; 0 means every one.
	Times int `json:"times,omitempty"`

	re   *regexp.Regexp
	used int
}

// Duration is a time.Duration written as "250ms" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("delay: want a duration such as \"250ms\"")
		}
		*d = Duration(time.Duration(n) * time.Millisecond)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("delay: %w", err)
	}
	*d = Duration(v)
	return nil
}

func (f *Fault) validate() error {
	switch f.Kind {
	case FaultLatency:
		if f.Delay <= 0 {
			return fmt.Errorf("fault %s: delay must be positive", f.Kind)
		}
	case FaultError:
		if f.Status == 0 {
			f.Status = http.StatusInternalServerError
		}
		if f.Status != http.StatusForbidden && (f.Status < 500 || f.Status > 599) {
			return fmt.Errorf("fault %s: status %d is neither 403 nor 5xx", f.Kind, f.Status)
		}
	case FaultTaskFail, FaultTaskHang, FaultDrop, FaultUnauthorized:
	default:
		return fmt.Errorf("fault kind %q: want latency, error, task-fail, task-hang, drop or unauthorized", f.Kind)
	}
	if f.Times < 0 {
		return fmt.Errorf("fault %s: times must not be negative", f.Kind)
	}
	f.Method = strings.ToUpper(f.Method)
	re, err := regexp.Compile(f.Path)
	if err != nil {
		return fmt.Errorf("fault %s: path: %w", f.Kind, err)
	}
	f.re = re
	return nil
}

type faultSet struct {
	mu     sync.Mutex
	faults []*Fault
}

// AddFault injects a fault; faults are tried in the order they were added and the first
// that matches a request applies.
func (s *Server) AddFault(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.faults = append(s.faults.faults, &f)
	return nil
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.faults = nil
}

// LoadFaults reads a JSON array of faults from a file and adds them.
func (s *Server) LoadFaults(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pvesim: faults: %w", err)
	}
	var fs []Fault
	if err := json.Unmarshal(b, &fs); err != nil {
		return fmt.Errorf("pvesim: faults %s: %w", path, err)
	}
	for _, f := range fs {
		if err := s.AddFault(f); err != nil {
			return fmt.Errorf("pvesim: faults %s: %w", path, err)
		}
	}
	return nil
}

func (fs *faultSet) match(method, path string) *Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.faults {
		if f.Method != "" && f.Method != method {
			continue
		}
		if !f.re.MatchString(path) {
			continue
		}
		f.used++
		if f.Times > 0 && f.used >= f.Times {
			fs.faults = append(fs.faults[:i:i], fs.faults[i+1:]...)
		}
		c := *f
		return &c
	}
	return nil
}

func (fs *faultSet) list() []Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]Fault, 0, len(fs.faults))
	for _, f := range fs.faults {
		out = append(out, *f)
	}
	return out
}

// applyRequestFault applies a fault that acts before the request is served; it reports
// whether the request is answered (or dropped) already.
func (s *Server) applyRequestFault(w http.ResponseWriter, hr *http.Request, f *Fault) bool {
	switch f.Kind {
	case FaultLatency:
		t := time.NewTimer(time.Duration(f.Delay))
		defer t.Stop()
		select {
		case <-t.C:
		case <-hr.Context().Done():
			return true
		case <-s.ctx.Done():
		}
		return false
	case FaultError:
		msg := f.Message
		if msg == "" {
			msg = fmt.Sprintf("injected fault %d", f.Status)
		}
		writeError(w, errorf(f.Status, "%s", msg))
		return true
	case FaultDrop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	case FaultUnauthorized:
		s.authDelay(hr)
		writeError(w, errorf(http.StatusUnauthorized, "authentication failure"))
		return true
	}
	return false
}

// serveAdmin serves /pvesim/faults, the emulator's own endpoint for tests run out of
// process: GET lists the faults, POST adds one (a JSON Fault) or several (a JSON array),
// DELETE clears them. It needs the same API token as the API.
func (s *Server) serveAdmin(w http.ResponseWriter, hr *http.Request) {
	if _, err := s.authenticate(hr); err != nil {
		s.authDelay(hr)
		writeError(w, err)
		return
	}
	if hr.URL.Path != "/pvesim/faults" {
		writeError(w, errorf(http.StatusNotFound, "no such pvesim endpoint"))
		return
	}
	switch hr.Method {
	case http.MethodGet:
		writeData(w, s.faults.list(), nil)
	case http.MethodDelete:
		s.ClearFaults()
		writeData(w, nil, nil)
	case http.MethodPost:
		var raw json.RawMessage
		if err := json.NewDecoder(http.MaxBytesReader(w, hr.Body, 1<<20)).Decode(&raw); err != nil {
			writeError(w, errorf(http.StatusBadRequest, "faults: %v", err))
			return
		}
		var fs []Fault
		if strings.HasPrefix(strings.TrimSpace(string(raw)), "[") {
			if err := json.Unmarshal(raw, &fs); err != nil {
				writeError(w, errorf(http.StatusBadRequest, "faults: %v", err))
				return
			}
		} else {
			var f Fault
			if err := json.Unmarshal(raw, &f); err != nil {
				writeError(w, errorf(http.StatusBadRequest, "faults: %v", err))
				return
			}
			fs = []Fault{f}
		}
		for _, f := range fs {
			if err := s.AddFault(f); err != nil {
				writeError(w, errorf(http.StatusBadRequest, "%v", err))
				return
			}
		}
		writeData(w, nil, nil)
	default:
		writeError(w, errorf(http.StatusNotImplemented, "Method '%s %s' not implemented", hr.Method, hr.URL.Path))
	}
}
