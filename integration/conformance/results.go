//go:build linux

package conformance

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Test statuses.
const (
	Passed  = "passed"
	Failed  = "failed"
	Skipped = "skipped"
	// NotRun is a test the suite started but never finished (the binary crashed or timed
	// out) or, in a comparison, a test that ran on one runtime only.
	NotRun = "not run"
)

// Result is one suite run against one runtime.
type Result struct {
	Suite   string `json:"suite"`
	Runtime string `json:"runtime"`
	// RuntimeName is the runtime's label in the report.
	RuntimeName string `json:"runtime_name"`
	// Focus is the test selection ("" for the whole suite).
	Focus    string        `json:"focus,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	// ExitCode is the suite binary's exit status; Error says why it did not run to its end.
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	Tests    []Test `json:"tests"`
}

// Test is one test's outcome.
type Test struct {
	Name    string  `json:"name"`
	Status  string  `json:"status"`
	Message string  `json:"message,omitempty"`
	Seconds float64 `json:"seconds"`
}

// Counts returns how many tests passed, failed (NotRun included) and were skipped.
func (r *Result) Counts() (passed, failed, skipped int) {
	for _, t := range r.Tests {
		switch t.Status {
		case Passed:
			passed++
		case Skipped:
			skipped++
		default:
			failed++
		}
	}
	return
}

// FileName is the name under which a Result is stored in a results folder.
func FileName(suite, runtime string) string { return suite + "--" + runtime + ".json" }

// Save writes r into dir as FileName(r.Suite, r.Runtime).
func (r *Result) Save(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, FileName(r.Suite, r.Runtime))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadResults reads every Result stored in dir.
func LoadResults(dir string) ([]*Result, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*--*.json"))
	if err != nil {
		return nil, err
	}
	var out []*Result
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// maxMessage bounds a failure message kept per test.
const maxMessage = 600

// ParseTestJSON reads a `go test -json` (test2json) stream and returns one Test per
// top-level test; a subtest's failure shows in its parent's message. A test that started
// but has no final action (the binary crashed or timed out) is NotRun, with the output it
// left.
func ParseTestJSON(r io.Reader) ([]Test, error) {
	type state struct {
		status  string
		seconds float64
		output  []string
		order   int
	}
	tests := map[string]*state{}
	get := func(name string) *state {
		s, ok := tests[name]
		if !ok {
			s = &state{order: len(tests)}
			tests[name] = s
		}
		return s
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var ev struct {
			Action  string
			Test    string
			Output  string
			Elapsed float64
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("test2json line %q: %w", line, err)
		}
		if ev.Test == "" {
			continue
		}
		top, _, _ := strings.Cut(ev.Test, "/")
		s := get(top)
		switch ev.Action {
		case "output":
			s.output = append(s.output, ev.Output)
		case "pass", "fail", "skip":
			if ev.Test != top {
				continue
			}
			s.status = map[string]string{"pass": Passed, "fail": Failed, "skip": Skipped}[ev.Action]
			s.seconds = ev.Elapsed
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// A timeout panics the binary and test2json pins the panic on whichever test printed
	// last, with a fail; the tests really running are named in the panic.
	hung := map[string]string{}
	for _, s := range tests {
		for i, l := range s.output {
			if !strings.HasPrefix(l, "panic: test timed out") {
				continue
			}
			for _, r := range s.output[i+1:] {
				f := strings.Fields(r)
				if len(f) == 0 || f[0] == "goroutine" {
					break
				}
				if len(f) == 2 && strings.HasPrefix(f[1], "(") {
					hung[f[0]] = strings.TrimSpace(l) + " while it ran for " + strings.Trim(f[1], "()")
				}
			}
		}
	}
	out := make([]Test, 0, len(tests))
	for name, s := range tests {
		t := Test{Name: name, Status: s.status, Seconds: s.seconds}
		switch {
		case hung[name] != "":
			t.Status, t.Message = NotRun, hung[name]
		case printed(s.output, "--- FAIL: "+name+" "):
			t.Status = Failed
		case printed(s.output, "--- PASS: "+name+" "):
			t.Status = Passed
		case t.Status == "":
			t.Status = NotRun
		}
		if t.Status != Passed && t.Message == "" {
			t.Message = goTestMessage(s.output)
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return tests[out[i].Name].order < tests[out[j].Name].order })
	return out, nil
}

// printed tells whether a test printed a line starting with prefix (its own --- PASS or
// --- FAIL line, which stays in the output when the binary dies before test2json reports
// the action).
func printed(output []string, prefix string) bool {
	for _, l := range output {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return true
		}
	}
	return false
}

// goTestMessage keeps the lines of a test's output that say why it failed or skipped: the
// t.Log/Error lines and what follows them, without the === and --- framing lines and
// without the client's debug log (containerd's suite logs every client call), and without
// a panic's goroutine dump.
func goTestMessage(output []string) string {
	var keep []string
	for _, l := range output {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "goroutine ") {
			break
		}
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- PASS") ||
			strings.HasPrefix(t, "--- FAIL") || strings.HasPrefix(t, "--- SKIP") ||
			strings.Contains(t, "log_hook.go:") || strings.HasPrefix(t, "time=\"") {
			continue
		}
		keep = append(keep, t)
	}
	return clip(strings.Join(keep, " "))
}

// ParseJUnit reads a ginkgo JUnit report and returns one Test per spec. Ginkgo's suite
// nodes ([BeforeSuite] and the like) are kept when they failed.
func ParseJUnit(r io.Reader) ([]Test, error) {
	var doc struct {
		Suites []struct {
			Cases []struct {
				Name    string  `xml:"name,attr"`
				Status  string  `xml:"status,attr"`
				Time    float64 `xml:"time,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Body    string `xml:",chardata"`
				} `xml:"failure"`
				Error *struct {
					Message string `xml:"message,attr"`
					Body    string `xml:",chardata"`
				} `xml:"error"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.NewDecoder(r).Decode(&doc); err != nil {
		return nil, fmt.Errorf("junit: %w", err)
	}
	var out []Test
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			t := Test{Name: strings.TrimSpace(strings.TrimPrefix(c.Name, "[It]")), Seconds: c.Time}
			switch {
			case c.Failure != nil:
				t.Status, t.Message = Failed, clip(gomegaMessage(firstNonEmpty(c.Failure.Message, c.Failure.Body)))
			case c.Error != nil:
				t.Status, t.Message = Failed, clip(gomegaMessage(firstNonEmpty(c.Error.Message, c.Error.Body)))
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				t.Status = Skipped
				if c.Skipped != nil {
					t.Message = clip(c.Skipped.Message)
				}
			case c.Status == "passed" || c.Status == "":
				t.Status = Passed
			default:
				t.Status = Failed
				t.Message = c.Status
			}
			if suiteNode(c.Name) && t.Status != Failed {
				continue // suite setup nodes count only when they fail
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// gomegaMessage drops what gomega adds to an error for Go programmers: the value's type and
// address before it, the dump of its fields after it.
func gomegaMessage(m string) string {
	m = gomegaValue.ReplaceAllString(m, "")
	if i := strings.Index(m, " { s: "); i > 0 {
		m = m[:i]
	}
	if i := strings.Index(m, "\n    {"); i > 0 {
		m = m[:i]
	}
	return m
}

var gomegaValue = regexp.MustCompile(`<\*?[A-Za-z0-9_.\[\]]+ \| 0x[0-9a-f]+>: `)

// suiteNode tells ginkgo's suite-level nodes ([BeforeSuite], [ReportAfterSuite] ...)
// from specs ([It] ...).
func suiteNode(name string) bool {
	for _, p := range []string{"[BeforeSuite]", "[AfterSuite]", "[SynchronizedBeforeSuite]",
		"[SynchronizedAfterSuite]", "[ReportBeforeSuite]", "[ReportAfterSuite]", "[DeferCleanup (Suite)]"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// clip folds whitespace and bounds a message to maxMessage bytes.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessage {
		s = s[:maxMessage] + " …"
	}
	return s
}

// RawOutput is the suite's raw output a Result is parsed from, stored beside it in dir.
func RawOutput(dir, suite, runtime string) string {
	base := filepath.Join(dir, suite+"--"+runtime)
	if suite == SuiteCRI {
		return base + ".junit.xml"
	}
	return base + ".test2json"
}

// Reparse parses r's tests again from its raw output in dir.
func Reparse(r *Result, dir string) error {
	f, err := os.Open(RawOutput(dir, r.Suite, r.Runtime))
	if err != nil {
		return err
	}
	defer f.Close()
	var tests []Test
	if r.Suite == SuiteCRI {
		tests, err = ParseJUnit(f)
	} else {
		tests, err = ParseTestJSON(f)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	r.Tests = tests
	return nil
}
