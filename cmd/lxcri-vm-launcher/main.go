// Command lxcri-vm-launcher is what the proxmox-vm backend places in a VM's guest to run
// OCI processes there. The QEMU guest agent's exec gives a command no environment, cwd,
// user or tty, and hands its output over only once it exits; the launcher, itself run
// through the agent, carries the rest:
//
//	start DIR            start the process DIR/config.json describes (chrooted into its
//	                     root, with its env, cwd, uid/gid, capabilities, rlimits and
//	                     no_new_privs), detached; print its pid
//	poll DIR OUT ERR MAX write DIR/out from offset OUT to stdout and DIR/err from ERR to
//	                     stderr (at most MAX bytes each); exit 0 while the process runs,
//	                     3 once it has exited
//	status DIR           print how it ended: "exit N" or "signal N" (or "error: ...")
//	append FILE          append stdin to FILE (stdin chunks, the rootfs archive)
//	untar TAR DEST       unpack a tar archive into DEST
//	kill DIR SIG         signal the process (SIG 9 on the init: its whole process group)
//
// The started process's stdin is DIR/stdin, a file the backend appends to; DIR/stdin.eof
// marks its end. Its stdout and stderr go to DIR/out and DIR/err.
package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lxcri/lxcri/backend/proxmoxvm/launchspec"
)

// Config is DIR/config.json, written by the backend.
type Config struct {
	Args   []string `json:"args"`
	Env    []string `json:"env"`
	Cwd    string   `json:"cwd"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
	// Root is the directory the process is chrooted into.
	Root string `json:"root"`
	// Capabilities are the process's five sets; nil grants none.
	Capabilities    *launchspec.CapSets `json:"capabilities,omitempty"`
	NoNewPrivileges bool                `json:"noNewPrivileges,omitempty"`
	Rlimits         []launchspec.Rlimit `json:"rlimits,omitempty"`
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "init" {
		// the supervisor learns the error through the report pipe; the process's stderr
		// is left to the process
		initProcess(os.Args[2])
		os.Exit(127)
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "lxcri-vm-launcher:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: lxcri-vm-launcher start|poll|status|append|untar|kill ...")
	}
	switch cmd, a := args[0], args[1:]; {
	case cmd == "start" && len(a) == 1:
		return start(a[0])
	case cmd == "run" && len(a) == 1:
		return runProcess(a[0])
	case cmd == "poll" && len(a) == 4:
		return poll(a[0], a[1], a[2], a[3])
	case cmd == "status" && len(a) == 1:
		b, err := os.ReadFile(filepath.Join(a[0], "status"))
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(b)
		return err
	case cmd == "append" && len(a) == 1:
		f, err := os.OpenFile(a[0], os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, os.Stdin); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case cmd == "untar" && len(a) == 2:
		return untar(a[0], a[1])
	case cmd == "kill" && len(a) == 2:
		return kill(a[0], a[1])
	}
	return fmt.Errorf("unknown command %q or wrong arguments", strings.Join(args, " "))
}

// start detaches "run DIR" in a session of its own and waits until it reports the pid (or
// a failure to start).
func start(dir string) error {
	for _, f := range []string{"out", "err", "stdin"} {
		fh, err := os.OpenFile(filepath.Join(dir, f), os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		fh.Close()
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "run", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	cmd.Process.Release()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
			fmt.Print(string(b))
			return nil
		}
		if b, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
			return errors.New(strings.TrimSpace(string(b)))
		}
	}
	return errors.New("the process did not start within 30s")
}

func writeAtomic(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// lookPath resolves a program name in the root's PATH, as execvp in the chroot would.
func lookPath(root, prog string, env []string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, prog)
		if fi, err := os.Stat(filepath.Join(root, p)); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH", prog)
}

// runProcess is the detached supervisor: it starts the process, feeds its stdin from
// DIR/stdin, and records its pid and how it ended.
func runProcess(dir string) (retErr error) {
	fail := func(err error) error {
		writeAtomic(filepath.Join(dir, "status"), []byte("error: "+err.Error()+"\n"))
		return err
	}
	cfg, err := readConfig(dir)
	if err != nil {
		return fail(err)
	}
	if _, err := privilegesOf(cfg); err != nil {
		return fail(err)
	}
	if _, err := lookPath(cfg.Root, cfg.Args[0], cfg.Env); err != nil {
		return fail(err)
	}
	self, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	out, err := os.OpenFile(filepath.Join(dir, "out"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fail(err)
	}
	errf, err := os.OpenFile(filepath.Join(dir, "err"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fail(err)
	}
	// the init step becomes the process (see initProcess); it reports a failure before
	// its exec on the pipe, which the exec closes
	report, reportW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer report.Close()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fail(err)
	}
	cmd := &exec.Cmd{Path: self, Args: []string{self, "init", abs}, Env: []string{}, Dir: "/",
		Stdout: out, Stderr: errf, ExtraFiles: []*os.File{reportW}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fail(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		return fail(err)
	}
	if msg, _ := io.ReadAll(report); len(msg) > 0 {
		cmd.Wait()
		return fail(errors.New(string(msg)))
	}
	if err := writeAtomic(filepath.Join(dir, "pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n")); err != nil {
		cmd.Process.Kill()
		return fail(err)
	}
	go feedStdin(dir, stdin)
	werr := cmd.Wait()
	status := "exit 0"
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			status = fmt.Sprintf("signal %d", int(ws.Signal()))
		} else {
			status = fmt.Sprintf("exit %d", ws.ExitStatus())
		}
	} else if werr != nil {
		status = "error: " + werr.Error()
	}
	return writeAtomic(filepath.Join(dir, "status"), []byte(status+"\n"))
}

func readConfig(dir string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, err
	}
	if len(cfg.Args) == 0 {
		return nil, errors.New("no args")
	}
	return &cfg, nil
}

// feedStdin copies what the backend appends to DIR/stdin into the process, until
// DIR/stdin.eof exists and all of it was copied.
func feedStdin(dir string, w io.WriteCloser) {
	defer w.Close()
	f, err := os.Open(filepath.Join(dir, "stdin"))
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			continue
		}
		if err != nil && err != io.EOF {
			return
		}
		if _, serr := os.Stat(filepath.Join(dir, "stdin.eof")); serr == nil {
			// the end is marked after the last chunk was appended: drain what is left
			if n, _ := io.Copy(w, f); n == 0 {
				return
			}
			continue
		}
		if _, serr := os.Stat(filepath.Join(dir, "status")); serr == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func poll(dir, outOff, errOff, maxS string) error {
	max, err := strconv.ParseInt(maxS, 10, 64)
	if err != nil {
		return err
	}
	for _, s := range []struct {
		file, off string
		w         io.Writer
	}{{"out", outOff, os.Stdout}, {"err", errOff, os.Stderr}} {
		off, err := strconv.ParseInt(s.off, 10, 64)
		if err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(dir, s.file))
		if err != nil {
			return err
		}
		_, err = io.Copy(s.w, io.NewSectionReader(f, off, max))
		f.Close()
		if err != nil {
			return err
		}
	}
	// the status is written after the process's output is complete
	if _, err := os.Stat(filepath.Join(dir, "status")); err == nil {
		os.Exit(3)
	}
	return nil
}

func kill(dir, sigS string) error {
	sig, err := strconv.Atoi(sigS)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("bad pid file")
	}
	if _, err := os.Stat(filepath.Join(dir, "status")); err == nil {
		return errors.New("process already finished")
	}
	if sig == int(syscall.SIGKILL) {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	return syscall.Kill(pid, syscall.Signal(sig))
}

// untar unpacks an archive the backend made from the image's root filesystem.
func untar(archive, dest string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(f)
	type dirAttr struct {
		name     string
		mode     os.FileMode
		uid, gid int
	}
	var dirs []dirAttr
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(strings.TrimPrefix(h.Name, "/"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			continue
		}
		mode := h.FileInfo().Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return err
			}
			dirs = append(dirs, dirAttr{name, mode, h.Uid, h.Gid})
		case tar.TypeReg:
			root.Remove(name)
			w, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(w, tr); err != nil {
				w.Close()
				return err
			}
			w.Close()
			root.Lchown(name, h.Uid, h.Gid)
			if err := root.Chmod(name, mode); err != nil {
				return err
			}
		case tar.TypeSymlink:
			root.Remove(name)
			if err := root.Symlink(h.Linkname, name); err != nil {
				return err
			}
			root.Lchown(name, h.Uid, h.Gid)
		case tar.TypeLink:
			root.Remove(name)
			if err := root.Link(filepath.Clean(strings.TrimPrefix(h.Linkname, "/")), name); err != nil {
				return err
			}
		default:
			// device nodes and fifos are made by the guest's own /dev
		}
	}
	for _, d := range dirs {
		root.Lchown(d.name, d.uid, d.gid)
		root.Chmod(d.name, d.mode)
	}
	return nil
}
