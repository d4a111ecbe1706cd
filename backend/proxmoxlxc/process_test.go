package proxmoxlxc

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/backend/lxcstart"
	"github.com/lxcri/lxcri/runtime"
)

// decodeRecord splits a spec record as lxcri-start reads it.
func decodeRecord(t *testing.T, b []byte) [][2]string {
	t.Helper()
	words := bytes.Split(bytes.TrimSuffix(b, []byte{0}), []byte{0})
	if len(words) < 2 || string(words[0]) != lxcstart.SpecMagic || string(words[len(words)-1]) != lxcstart.SpecEnd || len(words)%2 != 0 {
		t.Fatalf("malformed record %q", b)
	}
	var kv [][2]string
	for i := 1; i+1 < len(words); i += 2 {
		kv = append(kv, [2]string{string(words[i]), string(words[i+1])})
	}
	return kv
}

func TestExecRecord(t *testing.T) {
	umask := uint32(0o027)
	noCaps := [][2]string{{"cap-bounding", "0"}, {"cap-effective", "0"}, {"cap-permitted", "0"}, {"cap-inheritable", "0"}, {"cap-ambient", "0"}}
	kill := &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}}
	killCaps := [][2]string{{"cap-bounding", "20"}, {"cap-effective", "20"}, {"cap-permitted", "20"}, {"cap-inheritable", "0"}, {"cap-ambient", "0"}}
	chown := &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}, Permitted: []string{"CAP_CHOWN"}}
	chownCaps := [][2]string{{"cap-bounding", "1"}, {"cap-effective", "0"}, {"cap-permitted", "1"}, {"cap-inheritable", "0"}, {"cap-ambient", "0"}}
	join := func(parts ...[][2]string) [][2]string {
		var all [][2]string
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}
	for _, tc := range []struct {
		name string
		p    specs.Process
		init *specs.Process // the task's init's spec, for an exec
		tty  bool
		want [][2]string
	}{
		{
			name: "init without capabilities gets none",
			p:    specs.Process{Args: []string{"sh"}, Cwd: "/"},
			want: join([][2]string{{"cwd", "/"}, {"uid", "0"}, {"gid", "0"}, {"umask", "22"}}, noCaps, [][2]string{{"arg", "sh"}}),
		},
		{
			name: "exec without capabilities gets the init's",
			p:    specs.Process{Args: []string{"sh"}, Cwd: "/"},
			init: &specs.Process{Capabilities: kill},
			want: join([][2]string{{"cwd", "/"}, {"uid", "0"}, {"gid", "0"}, {"umask", "22"}}, killCaps, [][2]string{{"arg", "sh"}}),
		},
		{
			name: "exec without capabilities, init without them: none",
			p:    specs.Process{Args: []string{"sh"}, Cwd: "/"},
			init: &specs.Process{},
			want: join([][2]string{{"cwd", "/"}, {"uid", "0"}, {"gid", "0"}, {"umask", "22"}}, noCaps, [][2]string{{"arg", "sh"}}),
		},
		{
			name: "exec with capabilities of its own",
			p:    specs.Process{Args: []string{"sh"}, Cwd: "/", Capabilities: chown},
			init: &specs.Process{Capabilities: kill},
			want: join([][2]string{{"cwd", "/"}, {"uid", "0"}, {"gid", "0"}, {"umask", "22"}}, chownCaps, [][2]string{{"arg", "sh"}}),
		},
		{
			name: "full",
			p: specs.Process{Args: []string{"sh", "-c", "echo 'a b'"}, Env: []string{"A=1", "SECRET=x y"}, Cwd: "/srv",
				User:         specs.User{UID: 1000, GID: 100, AdditionalGids: []uint32{27, 44}, Umask: &umask},
				Capabilities: kill, NoNewPrivileges: true, OOMScoreAdj: ptr(500),
				Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 1000}}},
			tty: true,
			want: join([][2]string{{"cwd", "/srv"}, {"uid", "1000"}, {"gid", "100"}, {"group", "27"}, {"group", "44"}, {"umask", "27"},
				{"env", "A=1"}, {"env", "SECRET=x y"}, {"tty", "1"}, {"no-new-privs", "1"}}, killCaps,
				[][2]string{{"rlimit", "7:512:1000"}, {"arg", "sh"}, {"arg", "-c"}, {"arg", "echo 'a b'"}}),
		},
		{
			name: "the terminal is the IO's",
			p:    specs.Process{Args: []string{"sh"}, Cwd: "/", Terminal: true, Capabilities: kill},
			want: join([][2]string{{"cwd", "/"}, {"uid", "0"}, {"gid", "0"}, {"umask", "22"}}, killCaps, [][2]string{{"arg", "sh"}}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := execRecord(&tc.p, tc.init, tc.tty)
			if err != nil {
				t.Fatal(err)
			}
			if got := decodeRecord(t, b); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("record\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCheckExec(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*specs.Process)
	}{
		{"process.apparmorProfile", func(p *specs.Process) { p.ApparmorProfile = "unconfined" }},
		{"process.selinuxLabel", func(p *specs.Process) { p.SelinuxLabel = "l" }},
		{"process.args", func(p *specs.Process) { p.Args = nil }},
		{"process.env[0]", func(p *specs.Process) { p.Env = []string{"NOEQUALS"} }},
		{"process.cwd", func(p *specs.Process) { p.Cwd = "" }},
		{"process.capabilities.bounding[0]", func(p *specs.Process) { p.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_NOPE"}} }},
		{"process.rlimits[0].type", func(p *specs.Process) { p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOPE"}} }},
		{"process.oomScoreAdj", func(p *specs.Process) { p.OOMScoreAdj = ptr(-1001) }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			p := &specs.Process{Args: []string{"sh"}, Cwd: "/"}
			tc.edit(p)
			err := checkExec(p)
			var fe *runtime.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
	// what lxcri-start sets is taken
	p := &specs.Process{Args: []string{"sh"}, Cwd: "/", NoNewPrivileges: true, OOMScoreAdj: ptr(100),
		Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}},
		Rlimits:      []specs.POSIXRlimit{{Type: "RLIMIT_NPROC", Soft: 5, Hard: 5}}}
	if err := checkExec(p); err != nil {
		t.Errorf("checkExec: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestPpid(t *testing.T) {
	if got := ppid(os.Getpid()); got != os.Getppid() {
		t.Errorf("ppid(self) = %d, want %d", got, os.Getppid())
	}
	if got := ppid(1 << 30); got != 0 {
		t.Errorf("ppid of no process = %d, want 0", got)
	}
}
