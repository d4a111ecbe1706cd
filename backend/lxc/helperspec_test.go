package lxc

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/backend/lxcstart"
)

// fields splits a record into its NUL-terminated strings.
func fields(t *testing.T, rec []byte) []string {
	t.Helper()
	if len(rec) == 0 || rec[len(rec)-1] != 0 {
		t.Fatalf("record %q does not end in NUL", rec)
	}
	return strings.Split(string(rec[:len(rec)-1]), "\x00")
}

func TestHelperSpecEncode(t *testing.T) {
	rec, err := initSpec(&InitProcess{Args: []string{"/bin/true"}, Env: []string{"A=1"}, Umask: 0o22, CapInheritable: 0x20})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{lxcstart.SpecMagic, "umask", "22", "cap-inheritable", "20", "env", "A=1", "arg", "/bin/true", lxcstart.SpecEnd}
	if got := fields(t, rec); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("init record\n got %q\nwant %q", got, want)
	}
}

// TestHelperSpecDecode drives the helper's decoder with broken records: each is a clear
// error and exit status 255, before the helper looks for the container. Valid records get
// as far as loading the (missing) container.
func TestHelperSpecDecode(t *testing.T) {
	helper, _, _ := lxcEnv(t)
	rec := func(kv ...string) []byte {
		var b bytes.Buffer
		for _, s := range append(append([]string{lxcstart.SpecMagic}, kv...), lxcstart.SpecEnd) {
			b.WriteString(s)
			b.WriteByte(0)
		}
		return b.Bytes()
	}
	ok := func(kv ...string) []byte { return rec(append([]string{"arg", "/bin/true"}, kv...)...) }
	notDefined := "is not defined"
	for _, tc := range []struct {
		name string
		mode string
		data []byte
		want string
	}{
		{"empty", "exec", nil, "empty record"},
		{"no terminator", "exec", ok()[:len(ok())-1], "no terminator"},
		{"no magic", "exec", []byte("lxcri-start-spec-v0\x00end\x00"), "not a record"},
		{"no end", "exec", []byte(lxcstart.SpecMagic + "\x00arg\x00/bin/true\x00"), "no end marker"},
		{"key without value", "exec", []byte(lxcstart.SpecMagic + "\x00arg\x00"), "arg has no value"},
		{"after end", "exec", append(ok(), "x\x00"...), "after the end marker"},
		{"unknown key", "exec", ok("bogus", "1"), "unknown key bogus"},
		{"unknown start key", "start", rec("cwd", "/"), "unknown key cwd"},
		{"repeated key", "exec", ok("uid", "1", "uid", "2"), "uid given twice"},
		{"no command", "exec", rec("env", "A=1"), "no command"},
		{"bad env", "exec", ok("env", "NOEQUALS"), "invalid environment entry"},
		{"empty env key", "start", rec("env", "=x"), "invalid environment entry"},
		{"uid sign", "exec", ok("uid", "-1"), "invalid uid"},
		{"uid blank", "exec", ok("uid", " 1"), "invalid uid"},
		{"uid overflow", "exec", ok("uid", "4294967295"), "invalid uid"},
		{"umask range", "start", rec("umask", "1000"), "invalid umask"},
		{"umask digit", "exec", ok("umask", "8"), "invalid umask"},
		{"caps partial", "exec", ok("cap-bounding", "0", "cap-effective", "0"), "2 of the 5"},
		{"caps junk", "exec", ok("cap-permitted", "0xff"), "invalid capability mask"},
		{"rlimit negative", "exec", ok("rlimit", "4:-2:5"), "invalid rlimit"},
		{"rlimit plus", "exec", ok("rlimit", "4:+1:5"), "invalid rlimit"},
		{"rlimit overflow", "exec", ok("rlimit", "4:18446744073709551616:unlimited"), "invalid rlimit"},
		{"rlimit hex", "exec", ok("rlimit", "4:0x10:unlimited"), "invalid rlimit"},
		{"rlimit resource", "exec", ok("rlimit", "16:1:1"), "invalid rlimit"},
		{"rlimit fields", "exec", ok("rlimit", "4:1"), "want RES:SOFT:HARD"},
		{"oom range", "exec", ok("oom-score-adj", "-1001"), "invalid oom_score_adj"},
		{"tty value", "exec", ok("tty", "yes"), "invalid tty"},
		// valid: parsed through to the container lookup
		{"rlimit 2^63 and max-1", "exec", ok("rlimit", "4:9223372036854775808:18446744073709551614"), notDefined},
		{"rlimit unlimited", "exec", ok("rlimit", "1:unlimited:-1", "oom-score-adj", "-1000"), notDefined},
		{"start", "start", rec("umask", "22", "env", "A=a\nb", "arg", "/bin/true"), notDefined},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runHelperSpec(t, helper, tc.mode, tc.data, nil)
			if code != 255 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q: want 255 and %q", code, stderr, tc.want)
			}
		})
	}

	// spec data on the command line is refused
	for _, mode := range []string{"start", "exec"} {
		cmd := exec.Command(helper, mode, "c", t.TempDir(), "--env", "A=1", "--", "/bin/true")
		cmd.ExtraFiles = []*os.File{nil} // no report fd: errors go to stderr
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "usage") {
			t.Errorf("%s with argv options: %v %q, want a usage error", mode, err, out)
		}
	}
}

// runHelperSpec runs the helper's mode for a container that does not exist with record
// data on its spec fd, and returns its exit code (-1: killed by a signal) and stderr.
func runHelperSpec(t *testing.T, helper, mode string, data []byte, env []string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helper, lxcstart.Args(mode, "no-such-container", t.TempDir())...)
	cmd.ExtraFiles = []*os.File{nil, nil, nil, r} // no report fd: errors go to stderr
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	lxcstart.SendSpec(w, data)
	cmd.Wait()
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestHelperSpecDecodeSanitized feeds the decoder, built with AddressSanitizer and
// UBSan, every truncation of a record holding every key and seeded random corruptions of
// it: each ends in a clean error (or gets as far as the missing container), never in an
// out-of-bounds access, undefined behaviour or a crash.
func TestHelperSpecDecodeSanitized(t *testing.T) {
	lxcEnv(t)
	helper := filepath.Join(t.TempDir(), "lxcri-start-asan")
	out, err := exec.Command("gcc", "-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
		"-o", helper, "helper/lxcri-start.c", "-llxc").CombinedOutput()
	if err != nil {
		t.Fatalf("build the helper with sanitizers: %v\n%s", err, out)
	}
	env := []string{"ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:exitcode=99", "UBSAN_OPTIONS=halt_on_error=1:exitcode=98:print_stacktrace=1"}
	full, err := lxcstart.ExecSpec(&specs.Process{
		Args: []string{"/bin/sh", "-c", "true"}, Env: []string{"A=1", "B=x=y"}, Cwd: "/",
		User:     specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3}, Umask: ptr(uint32(0o22))},
		Terminal: true, NoNewPrivileges: true, OOMScoreAdj: ptr(5),
		Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}},
		Rlimits:      []specs.POSIXRlimit{{Type: "RLIMIT_CORE", Soft: 1 << 63, Hard: ^uint64(0)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, data []byte) {
		code, stderr := runHelperSpec(t, helper, "exec", data, env)
		if code != 255 || !strings.HasPrefix(stderr, "lxcri-start: ") || strings.Contains(stderr, "Sanitizer") || strings.Contains(stderr, "runtime error") {
			t.Errorf("%s (%q): exit %d, stderr %q; want exit 255 and one error line", what, data, code, stderr)
		}
	}
	for n := 0; n <= len(full); n++ {
		check(fmt.Sprintf("truncated to %d bytes", n), full[:n])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		data := bytes.Clone(full)
		for k := 0; k < 1+rng.IntN(4); k++ {
			switch j := rng.IntN(len(data)); rng.IntN(3) {
			case 0:
				data[j] = 0
			case 1:
				data[j] = byte(rng.IntN(256))
			default:
				data = append(data[:j], data[j+1:]...)
			}
		}
		check(fmt.Sprintf("corruption %d", i), data)
	}
}
