package zfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	gozfs "github.com/mistifyio/go-zfs/v4"
)

// ReceiveCanmount is the canmount property of every dataset Receive makes: only an
// explicit Mount mounts it, never `zfs mount -a` (at boot, or by an administrator).
const ReceiveCanmount = "noauto"

// receiveArgs is the `zfs receive` command line (OpenZFS's) before the target name. A
// stream is data from outside (a checkpoint image anyone may import), and some of the
// properties a stream can carry (`zfs send -p` or -R) reach the host beyond the received
// dataset: mountpoint (mounted over /etc, say), canmount (mounted at the next
// `zfs mount -a`), sharenfs and sharesmb (exported to the network). So the dataset is
// received unmounted (-u), those properties are excluded from the stream (-x: mountpoint
// is then inherited from the parent, as for any other dataset of the Store), and canmount
// is set by the receiver (-o). go-zfs's ReceiveSnapshot takes no flags, which is why
// Receive runs zfs itself. zfs-fuse knows -u but not -x or -o; the test translation layer
// (integration/zfstest/compat) emulates them there by `zfs inherit` and `zfs set` on the
// unmounted dataset, before anything mounts it.
var receiveArgs = []string{"receive", "-u",
	"-x", "mountpoint", "-x", "sharenfs", "-x", "sharesmb",
	"-o", "canmount=" + ReceiveCanmount}

// Receive creates dataset (a filesystem, or dataset@snap to name the snapshot) from a full
// stream read from r, which Receive reads to its end. dataset must not exist yet
// (AlreadyExists); nothing is left behind when the receive fails. When ctx ends, the zfs
// process is stopped (its input ends early) and Receive returns once a Read in progress
// has returned (it waits streamGrace for that); r is not read after Receive returned.
//
// The received filesystem is not mounted, its mountpoint, sharenfs and sharesmb are
// inherited (whatever the stream says), and canmount is ReceiveCanmount: Mount mounts it
// (see receiveArgs). Receive checks this on the result and fails when zfs did otherwise.
// It does not judge the stream further (descendants, other properties): callers that take
// streams from elsewhere check them first with CheckPlainStream.
func (s *Store) Receive(ctx context.Context, dataset string, r io.Reader) error {
	const op = "receive"
	fs, _, isSnap := strings.Cut(dataset, "@")
	if err := s.check(op, dataset, isSnap); err != nil {
		return err
	}
	if err := s.absent(ctx, op, fs); err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return wrap(op, dataset, err)
	}
	g := &guard{}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(pw, guardedReader{g, r})
		pw.Close() // zfs receive sees the end of its input
		copied <- err
	}()
	received := make(chan error, 1)
	go func() {
		err := runZFS(pr, nil, append(receiveArgs, dataset)...)
		pr.Close() // a copy still writing gets EPIPE
		received <- err
	}()

	var recvErr error
	select {
	case recvErr = <-received:
	case <-ctx.Done():
		pw.Close() // zfs receive ends on the truncated stream
		g.stop()
		go func() {
			<-received
			s.destroyLeftover(fs)
		}()
		return wrap(op, dataset, ctx.Err())
	}
	if recvErr != nil {
		select { // a reader that failed is worth naming
		case err := <-copied:
			if err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, os.ErrClosed) {
				recvErr = errors.Join(recvErr, fmt.Errorf("read stream: %w", err))
			}
		case <-ctx.Done():
			g.stop()
		}
		s.destroyLeftover(fs)
		return wrap(op, dataset, recvErr)
	}
	// zfs checked the whole stream: the receive stands whatever r does after its end, but
	// r is read to its end (or until ctx ends) before Receive returns.
	select {
	case <-copied:
	case <-ctx.Done():
		g.stop()
	}
	if err := s.checkReceived(ctx, fs); err != nil {
		s.destroyLeftover(fs)
		return err
	}
	return nil
}

// checkReceived makes sure zfs applied receiveArgs to fs: not mounted, the excluded
// properties not set from the stream (nor locally), canmount as asked.
func (s *Store) checkReceived(ctx context.Context, fs string) error {
	const op = "receive"
	var out bytes.Buffer
	err := s.do(ctx, op, fs, func() error {
		out.Reset()
		return runZFS(nil, &out, "get", "-H", "-o", "property,value,source",
			"mounted,canmount,mountpoint,sharenfs,sharesmb", fs)
	}, nil)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			return &Error{Op: op, Name: fs, Msg: fmt.Sprintf("unexpected zfs get output %q", line), Kind: errdefs.ErrInternal}
		}
		prop, val, src := f[0], f[1], f[2]
		bad := false
		switch prop {
		case "mounted":
			bad = val != "no"
		case "canmount":
			bad = val != ReceiveCanmount
		default: // excluded: inherited or default, never local or received
			bad = src != "default" && src != "-" && !strings.HasPrefix(src, "inherited")
		}
		if bad {
			return &Error{Op: op, Name: fs, Kind: errdefs.ErrInternal,
				Msg: fmt.Sprintf("zfs did not receive it as asked (%s): %s is %q (source %s)", strings.Join(receiveArgs, " "), prop, val, src)}
		}
	}
	return nil
}

// Mount mounts the filesystem dataset (one Receive made, say) when it is not mounted yet,
// and returns its mountpoint. It fails with FailedPrecondition when ZFS does not mount
// it at a path (mountpoint none or legacy).
func (s *Store) Mount(ctx context.Context, dataset string) (string, error) {
	const op = "mount"
	if err := s.check(op, dataset, false); err != nil {
		return "", err
	}
	mp, mounted, err := s.mountState(ctx, op, dataset)
	if err != nil {
		return "", err
	}
	if !mounted {
		err := s.retryBusy(ctx, op, dataset, func() error {
			_, err := (&gozfs.Dataset{Name: dataset, Type: gozfs.DatasetFilesystem}).Mount(false, nil)
			return err
		})
		if err != nil {
			return "", err
		}
		// Read back: the mount is what proves it.
		return s.Mountpoint(ctx, dataset)
	}
	return mp, nil
}

// runZFS runs zfs with args as go-zfs runs its commands (its Runner's timeout applies),
// for the calls go-zfs has no flags for; a failure is a *gozfs.Error, which wrap reads.
func runZFS(stdin io.Reader, stdout io.Writer, args ...string) error {
	var cmd *exec.Cmd
	if rn := gozfs.Default(); rn.Timeout > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), rn.Timeout)
		defer cancel()
		cmd = exec.CommandContext(ctx, "zfs", args...)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = rn.Grace
	} else {
		cmd = exec.Command("zfs", args...)
	}
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &stderr
	if err := cmd.Run(); err != nil {
		return &gozfs.Error{Err: err, Debug: "zfs " + strings.Join(args, " "), Stderr: stderr.String()}
	}
	return nil
}
