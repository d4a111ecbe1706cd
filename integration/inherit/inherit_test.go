package inherit

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloseOnExec: a descriptor inherited without close-on-exec (as flock(1) passes its
// lock's) reaches a child before CloseOnExec and no longer after it.
func TestCloseOnExec(t *testing.T) {
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY, 0) // no O_CLOEXEC, as an inherited fd
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	inChild := func() bool {
		err := exec.Command("test", "-e", "/proc/self/fd/"+strconv.Itoa(fd)).Run()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatal(err)
		}
		return err == nil
	}
	if !inChild() {
		t.Fatalf("fd %d without close-on-exec did not reach the child: the test cannot tell", fd)
	}
	CloseOnExec()
	if inChild() {
		t.Errorf("fd %d reached a child after CloseOnExec", fd)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&syscall.FD_CLOEXEC == 0 {
		t.Errorf("fd %d flags %#x, want FD_CLOEXEC", fd, flags)
	}
	for _, std := range []int{0, 1, 2} {
		if f, err := unix.FcntlInt(uintptr(std), unix.F_GETFD, 0); err == nil && f&syscall.FD_CLOEXEC != 0 {
			t.Errorf("stdio fd %d became close-on-exec", std)
		}
	}
}
