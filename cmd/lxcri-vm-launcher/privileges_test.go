package main

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/backend/proxmoxvm/launchspec"
)

func TestPrivilegesOf(t *testing.T) {
	bit := func(cs ...int) uint64 {
		var m uint64
		for _, c := range cs {
			m |= 1 << uint(c)
		}
		return m
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want privileges
		err  string
	}{
		{name: "no capabilities grant none", cfg: Config{}, want: privileges{}},
		{name: "each set by name", cfg: Config{
			Capabilities: &launchspec.CapSets{
				Bounding:    []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
				Effective:   []string{"CAP_CHOWN"},
				Inheritable: []string{"CAP_KILL"},
				Permitted:   []string{"CAP_CHOWN", "CAP_KILL"},
				Ambient:     []string{"CAP_KILL"},
			},
			NoNewPrivileges: true,
			Rlimits:         []launchspec.Rlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 512}},
		}, want: privileges{
			bounding:    bit(unix.CAP_CHOWN, unix.CAP_KILL, unix.CAP_NET_BIND_SERVICE),
			effective:   bit(unix.CAP_CHOWN),
			inheritable: bit(unix.CAP_KILL),
			permitted:   bit(unix.CAP_CHOWN, unix.CAP_KILL),
			ambient:     bit(unix.CAP_KILL),
			noNewPrivs:  true,
			rlimits:     []rlimit{{unix.RLIMIT_NOFILE, 512, 1024}},
		}},
		{name: "the highest capability", cfg: Config{Capabilities: &launchspec.CapSets{Bounding: []string{"CAP_CHECKPOINT_RESTORE"}}},
			want: privileges{bounding: 1 << 40}},
		{name: "unknown capability", cfg: Config{Capabilities: &launchspec.CapSets{Ambient: []string{"CAP_NOPE"}}}, err: "capabilities.ambient: unknown name CAP_NOPE"},
		{name: "unknown rlimit", cfg: Config{Rlimits: []launchspec.Rlimit{{Type: "RLIMIT_NOPE"}}}, err: "rlimits: unknown type RLIMIT_NOPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := privilegesOf(&tc.cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.bounding != tc.want.bounding || p.effective != tc.want.effective || p.inheritable != tc.want.inheritable ||
				p.permitted != tc.want.permitted || p.ambient != tc.want.ambient || p.noNewPrivs != tc.want.noNewPrivs ||
				len(p.rlimits) != len(tc.want.rlimits) || (len(p.rlimits) == 1 && p.rlimits[0] != tc.want.rlimits[0]) {
				t.Errorf("privileges %+v, want %+v", *p, tc.want)
			}
		})
	}
}

// Every capability the kernel running the tests knows is in the table, so a spec naming
// it reaches the process.
func TestLastCapKnown(t *testing.T) {
	last := lastCap()
	if last < unix.CAP_AUDIT_READ {
		t.Fatalf("last capability %d: PR_CAPBSET_READ does not work here", last)
	}
	known := map[int]bool{}
	for _, c := range launchspec.Capabilities {
		known[c] = true
	}
	for c := 0; c <= last; c++ {
		if !known[c] {
			t.Errorf("capability %d of this kernel has no name in the table", c)
		}
	}
}
