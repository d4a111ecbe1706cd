//go:build linux

package conformance

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseTestJSON(t *testing.T) {
	stream := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.10s)\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"run","Package":"p","Test":"TestB/sub"}
{"Action":"output","Package":"p","Test":"TestB/sub","Output":"    b_test.go:9: boom: exit 1\n"}
{"Action":"fail","Package":"p","Test":"TestB/sub","Elapsed":0.2}
{"Action":"fail","Package":"p","Test":"TestB","Elapsed":0.3}
{"Action":"run","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: no criu\n"}
{"Action":"skip","Package":"p","Test":"TestC","Elapsed":0}
not json: build output
{"Action":"run","Package":"p","Test":"TestHung"}
{"Action":"output","Package":"p","Test":"TestHung","Output":"=== RUN   TestHung\n"}
{"Action":"run","Package":"p","Test":"TestLast"}
{"Action":"output","Package":"p","Test":"TestLast","Output":"    log_hook.go:47: time=\"x\" level=debug msg=resolving\n"}
{"Action":"output","Package":"p","Test":"TestLast","Output":"--- PASS: TestLast (0.00s)\n"}
{"Action":"output","Package":"p","Test":"TestLast","Output":"panic: test timed out after 9m0s\n"}
{"Action":"output","Package":"p","Test":"TestLast","Output":"\trunning tests:\n"}
{"Action":"output","Package":"p","Test":"TestLast","Output":"\t\tTestHung (7m46s)\n"}
{"Action":"output","Package":"p","Test":"TestLast","Output":"\n"}
{"Action":"output","Package":"p","Test":"TestLast","Output":"goroutine 4994 [running]:\n"}
{"Action":"fail","Package":"p","Test":"TestLast","Elapsed":540}
{"Action":"run","Package":"p","Test":"TestE"}
{"Action":"output","Package":"p","Test":"TestE","Output":"    log_hook.go:47: time=\"x\" level=debug msg=resolving\n"}
{"Action":"output","Package":"p","Test":"TestE","Output":"    e_test.go:75: expected 0 containers\n"}
{"Action":"output","Package":"p","Test":"TestE","Output":"--- FAIL: TestE (0.00s)\n"}
{"Action":"fail","Package":"p","Elapsed":540}
`
	got, err := ParseTestJSON(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	want := []Test{
		{Name: "TestA", Status: Passed, Seconds: 0.1},
		{Name: "TestB", Status: Failed, Seconds: 0.3, Message: "b_test.go:9: boom: exit 1"},
		{Name: "TestC", Status: Skipped, Message: "c_test.go:3: no criu"},
		{Name: "TestHung", Status: NotRun, Message: "panic: test timed out after 9m0s while it ran for 7m46s"},
		{Name: "TestLast", Status: Passed, Seconds: 540},
		{Name: "TestE", Status: Failed, Message: "e_test.go:75: expected 0 containers"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseTestJSON:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseJUnit(t *testing.T) {
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4">
  <testsuite name="CRI validation" tests="4">
    <testcase name="[BeforeSuite]" classname="CRI validation" status="passed" time="0.1"></testcase>
    <testcase name="[It] [sig-node] Container runtime should support exec [Conformance]" classname="CRI validation" status="passed" time="1.5"></testcase>
    <testcase name="[It] [sig-node] Image Manager public image with digest" classname="CRI validation" status="failed" time="2">
      <failure message="failed to pull image Unexpected error: &lt;*status.Error | 0xc000123&gt;: rpc error: code = NotFound desc = not found { s: { s: { state: {} } } }" type="failed">[FAILED] long
 body</failure>
    </testcase>
    <testcase name="[It] [sig-node] Windows only" classname="CRI validation" status="skipped" time="0">
      <skipped message="skipped - not on windows"></skipped>
    </testcase>
  </testsuite>
</testsuites>`
	got, err := ParseJUnit(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []Test{
		{Name: "[sig-node] Container runtime should support exec [Conformance]", Status: Passed, Seconds: 1.5},
		{Name: "[sig-node] Image Manager public image with digest", Status: Failed, Seconds: 2, Message: "failed to pull image Unexpected error: rpc error: code = NotFound desc = not found"},
		{Name: "[sig-node] Windows only", Status: Skipped, Message: "skipped - not on windows"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseJUnit:\n got %+v\nwant %+v", got, want)
	}
}

func TestDifferencesAndReport(t *testing.T) {
	runc := &Result{Suite: SuiteClient, Runtime: RuncShim, RuntimeName: "runc", Tests: []Test{
		{Name: "TestSame", Status: Passed},
		{Name: "TestTTY", Status: Passed},
		{Name: "TestCheckpoint", Status: Failed, Message: "criu failed"},
		{Name: "TestGone", Status: Passed},
	}}
	lxc := &Result{Suite: SuiteClient, Runtime: LXC, RuntimeName: "lxc", Tests: []Test{
		{Name: "TestSame", Status: Passed},
		{Name: "TestTTY", Status: Failed, Message: "console | closed"},
		{Name: "TestCheckpoint", Status: Passed},
	}}
	reasons := Reasons{{SuiteClient, "*", "TestCheckpoint"}: "lxcri checkpoints on ZFS, without CRIU"}
	got := Differences([]*Result{lxc, runc}, RuncShim, reasons)
	want := []Difference{
		{Suite: SuiteClient, Runtime: LXC, Test: "TestCheckpoint", Baseline: Failed, Status: Passed, Message: "(the baseline's) criu failed", Reason: "lxcri checkpoints on ZFS, without CRIU"},
		{Suite: SuiteClient, Runtime: LXC, Test: "TestGone", Baseline: Passed, Status: NotRun, Reason: "did not run to its end here"},
		{Suite: SuiteClient, Runtime: LXC, Test: "TestTTY", Baseline: Passed, Status: Failed, Message: "console | closed", Reason: "observed: console | closed"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Differences:\n got %+v\nwant %+v", got, want)
	}

	var buf bytes.Buffer
	if err := WriteReport(&buf, []*Result{lxc, runc}, RuncShim, reasons, ""); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	buf.Reset()
	if err := WriteReport(&buf, []*Result{lxc}, RuncShim, reasons, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "| containerd-client | lxc | 2 | 1 | 0 | no baseline run |") {
		t.Errorf("report without a baseline run:\n%s", buf.String())
	}
	for _, s := range []string{
		"| containerd-client | runc | 3 | 1 | 0 | baseline |",
		"| containerd-client | lxc | 2 | 1 | 0 | 3 |",
		"### containerd-client on lxc",
		`| TestTTY | passed | failed | console \| closed | observed: console \| closed |`,
	} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
}

func TestLoadReasons(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "reasons")
	if err := os.WriteFile(p, []byte("# comment\n\ncritest\tlxc\tTest X\tLXC has no Y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := LoadReasons(p)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := rs.lookup("critest", "lxc", "Test X"); !ok || r != "LXC has no Y" {
		t.Errorf("lookup = %q, %v", r, ok)
	}
	if err := os.WriteFile(p, []byte("critest\tlxc\tno reason\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadReasons(p); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("malformed line: err = %v, want one naming line 1", err)
	}
	if rs, err := LoadReasons(filepath.Join(dir, "missing")); err != nil || len(rs) != 0 {
		t.Errorf("missing file: %v, %v", rs, err)
	}
}

func TestResultSaveLoad(t *testing.T) {
	dir := t.TempDir()
	r := &Result{Suite: SuiteCRI, Runtime: LXC, Tests: []Test{{Name: "a", Status: Passed}}}
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0].Tests, r.Tests) || got[0].Suite != SuiteCRI {
		t.Errorf("LoadResults = %+v", got)
	}
}

func TestSkipPattern(t *testing.T) {
	for _, tc := range []struct {
		suite, extra, want string
	}{
		{SuiteClient, "", "^(TestBindLowPortNonOpt)$"},
		{SuiteClient, "TestX", "^(TestBindLowPortNonOpt)$|TestX"},
		{SuiteCRI, "", ""},
		{SuiteCRI, "flaky", "flaky"},
	} {
		if got := skipPattern(tc.suite, tc.extra); got != tc.want {
			t.Errorf("skipPattern(%q, %q) = %q, want %q", tc.suite, tc.extra, got, tc.want)
		}
	}
}
