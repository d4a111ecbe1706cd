package lxc

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultExecPath is the search path execvp(3) uses when the environment has no PATH
// (glibc's _CS_PATH); liblxc execs the init with execvp.
const defaultExecPath = "/bin:/usr/bin"

// checkInitProgram fails when the init's program cannot be found in the container, as
// runc's create does (its init looks the program up before it waits for start): without
// it the failure would only come at Start, after containerd took the task as created.
// pid is the init, held at Create: it already runs in the container's root with its
// mounts, so the lookup goes through /proc/PID/root.
func checkInitProgram(pid int, p *specs.Process) error {
	if p == nil || len(p.Args) == 0 {
		return nil
	}
	root, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the root of init %d: %w", pid, err)
	}
	defer unix.Close(root)
	return lookProgram(root, p.Args[0], p.Cwd, p.Env)
}

// lookProgram resolves name as execvp(3) does with env's PATH, inside the directory tree
// of root (symlinks resolved as if root were "/"): a name with a slash is a path
// (relative ones from cwd), others are searched in PATH's folders. The result is an
// error shaped as runc's, naming the program; nil when a regular file with an execute
// bit is found.
func lookProgram(root int, name, cwd string, env []string) error {
	if name == "" {
		return fieldErr("process.args[0]", "exec: no program given")
	}
	if strings.Contains(name, "/") {
		err := executable(root, resolve(cwd, name))
		if err == nil {
			return nil
		}
		return fieldErr("process.args[0]", "exec: %q: %v", name, err)
	}
	search, ok := envValue(env, "PATH")
	if !ok {
		search = defaultExecPath
	}
	var denied error
	for _, dir := range strings.Split(search, ":") {
		if dir == "" {
			dir = "." // an empty PATH entry is the working directory
		}
		err := executable(root, resolve(cwd, path.Join(dir, name)))
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.EACCES) && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		return fieldErr("process.args[0]", "exec: %q: %v", name, denied)
	}
	return fieldErr("process.args[0]", "exec: %q: executable file not found in $PATH", name)
}

// resolve makes p absolute against cwd (the process's working directory in the container).
func resolve(cwd, p string) string {
	if path.IsAbs(p) {
		return p
	}
	if cwd == "" {
		cwd = "/"
	}
	return path.Join(cwd, p)
}

// executable tells whether p, below root, is a file execve could run: a regular file
// with an execute bit (who may run it is the process's business, as for runc).
func executable(root int, p string) error {
	rel := strings.TrimLeft(p, "/")
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(root, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return &pathErr{p, err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &pathErr{p, err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
		return &pathErr{p, unix.EACCES}
	}
	return nil
}

type pathErr struct {
	path string
	err  error
}

func (e *pathErr) Error() string { return "stat " + e.path + ": " + e.err.Error() }
func (e *pathErr) Unwrap() error { return e.err }

// envValue is the value of the first key=value entry of env for key, as getenv(3).
func envValue(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
