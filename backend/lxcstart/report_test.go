package lxcstart

import "testing"

func TestParseReport(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Report
	}{
		{"pid 42", Report{Kind: Pid, Pid: 42}},
		{"pid  42 ", Report{Kind: Pid, Pid: 42}},
		{"pid 0", Report{Kind: Other}},
		{"pid -3", Report{Kind: Other}},
		{"pid x", Report{Kind: Other}},
		{"error exec /bin/nope: No such file or directory", Report{Kind: Error, Msg: "exec /bin/nope: No such file or directory"}},
		{"error ", Report{Kind: Error}},
		{"invalid lxc.cap.drop: bad", Report{Kind: Invalid, Msg: "lxc.cap.drop: bad"}},
		{"pid", Report{Kind: Other}},
		{"error", Report{Kind: Other}},
		{"", Report{Kind: Other}},
		{"started 1", Report{Kind: Other}},
	} {
		if got := ParseReport(tc.line); got != tc.want {
			t.Errorf("ParseReport(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}
}
