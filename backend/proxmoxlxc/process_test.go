package proxmoxlxc

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/backend/lxcstart"
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
	for _, tc := range []struct {
		name string
		p    specs.Process
		tty  bool
		want [][2]string
	}{
		{
			name: "defaults",
			p:    specs.Process{Args: []string{"sh"}},
			want: [][2]string{{"cwd", "/"}, {"uid", "0"}, {"gid", "0"}, {"arg", "sh"}},
		},
		{
			name: "full",
			p: specs.Process{Args: []string{"sh", "-c", "echo 'a b'"}, Env: []string{"A=1", "SECRET=x y"}, Cwd: "/srv",
				User: specs.User{UID: 1000, GID: 100, AdditionalGids: []uint32{27, 44}, Umask: &umask}},
			tty: true,
			want: [][2]string{{"cwd", "/srv"}, {"uid", "1000"}, {"gid", "100"}, {"group", "27"}, {"group", "44"}, {"umask", "27"},
				{"env", "A=1"}, {"env", "SECRET=x y"}, {"tty", "1"}, {"arg", "sh"}, {"arg", "-c"}, {"arg", "echo 'a b'"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := execRecord(&tc.p, tc.tty)
			if err != nil {
				t.Fatal(err)
			}
			if got := decodeRecord(t, b); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("record\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestPpid(t *testing.T) {
	if got := ppid(os.Getpid()); got != os.Getppid() {
		t.Errorf("ppid(self) = %d, want %d", got, os.Getppid())
	}
	if got := ppid(1 << 30); got != 0 {
		t.Errorf("ppid of no process = %d, want 0", got)
	}
}
