package proxmoxvm

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/proxmox"
)

// Where the backend keeps its files in the guest.
const (
	guestDir      = "/var/lib/lxcri"
	guestLauncher = guestDir + "/lxcri-vm-launcher"
	guestRootfs   = guestDir + "/rootfs"
	guestProcs    = guestDir + "/proc"
	guestTar      = guestDir + "/rootfs.tar"
)

// chunk is how much one agent/exec carries as input: PVE's limit.
const chunk = proxmox.MaxAgentInput

// guest runs commands in a VM through its agent.
type guest struct {
	api  *proxmox.Client
	vmid int
}

// run runs argv in the guest with input as its stdin and waits for it to exit.
func (g *guest) run(ctx context.Context, input []byte, argv ...string) (*proxmox.ExecStatus, error) {
	pid, err := g.api.AgentExec(ctx, g.vmid, argv, input)
	if err != nil {
		return nil, err
	}
	wait := 5 * time.Millisecond
	for {
		st, err := g.api.AgentExecStatus(ctx, g.vmid, pid)
		if err != nil {
			return nil, err
		}
		if st.Exited {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		if wait *= 2; wait > 100*time.Millisecond {
			wait = 100 * time.Millisecond
		}
	}
}

// check runs argv and fails unless it exits 0, with its stderr in the error.
func (g *guest) check(ctx context.Context, input []byte, argv ...string) (*proxmox.ExecStatus, error) {
	st, err := g.run(ctx, input, argv...)
	if err != nil {
		return nil, err
	}
	if st.ExitCode != 0 || st.Signal != 0 {
		return st, fmt.Errorf("%s in VM %d: exit %d: %s: %w", argv[0], g.vmid, st.ExitCode, bytes.TrimSpace(st.Err), errdefs.ErrFailedPrecondition)
	}
	return st, nil
}

// upload appends r to file in the guest, one agent call per chunk, through the guest's
// own shell (the launcher may not be there yet) or the launcher.
func (g *guest) upload(ctx context.Context, r io.Reader, appendCmd ...string) error {
	buf := make([]byte, chunk)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if _, cerr := g.check(ctx, buf[:n], appendCmd...); cerr != nil {
				return cerr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// placeLauncher copies the launcher into the guest with the guest's sh and cat.
func (g *guest) placeLauncher(ctx context.Context, launcher []byte) error {
	if _, err := g.check(ctx, nil, "mkdir", "-p", guestProcs); err != nil {
		return fmt.Errorf("the guest needs mkdir, sh and cat on its PATH: %w", err)
	}
	part := guestLauncher + ".part"
	if _, err := g.check(ctx, nil, "rm", "-f", part); err != nil {
		return err
	}
	if err := g.upload(ctx, bytes.NewReader(launcher), "sh", "-c", "cat >> "+part); err != nil {
		return err
	}
	if _, err := g.check(ctx, nil, "chmod", "0755", part); err != nil {
		return err
	}
	_, err := g.check(ctx, nil, "mv", "-f", part, guestLauncher)
	return err
}

// uploadRootfs sends the image's root filesystem as a tar archive and unpacks it as the
// root the processes are chrooted into.
func (g *guest) uploadRootfs(ctx context.Context, rootfs, scratch string) error {
	f, err := os.CreateTemp(scratch, "rootfs-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := writeTar(f, rootfs); err != nil {
		return fmt.Errorf("archive the root filesystem: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := g.check(ctx, nil, guestLauncher, "untar", "/dev/null", guestRootfs); err != nil {
		return err
	}
	if err := g.upload(ctx, f, guestLauncher, "append", guestTar); err != nil {
		return err
	}
	if _, err := g.check(ctx, nil, guestLauncher, "untar", guestTar, guestRootfs); err != nil {
		return err
	}
	_, err = g.check(ctx, nil, "rm", "-f", guestTar)
	return err
}

// writeTar archives a directory tree with owners, modes and symlinks; device nodes and
// fifos are left to the guest's /dev.
func writeTar(w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		} else if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = rel
		if fi.IsDir() {
			h.Name += "/"
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			h.Uid, h.Gid = int(st.Uid), int(st.Gid)
		}
		h.Uname, h.Gname = "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
