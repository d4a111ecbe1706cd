package lxc

import (
	"fmt"
	"strconv"

	"github.com/lxcri/lxcri/backend/lxcstart"
)

// initSpec is the init's spec record for `lxcri-start start`: everything taken from the
// spec reaches the helper through a pipe, never its argv (/proc/PID/cmdline is
// world-readable, and the start helper lives as long as the container: it is its
// monitor).
func initSpec(in *InitProcess) ([]byte, error) {
	s := lxcstart.NewSpec()
	s.Add("process.user.umask", "umask", strconv.FormatUint(uint64(in.Umask), 8))
	if in.CapInheritable != 0 {
		s.Add("process.capabilities.inheritable", "cap-inheritable", strconv.FormatUint(in.CapInheritable, 16))
	}
	for i, e := range in.Env {
		s.Add(fmt.Sprintf("process.env[%d]", i), "env", e)
	}
	for i, a := range in.Args {
		s.Add(fmt.Sprintf("process.args[%d]", i), "arg", a)
	}
	return s.Encode()
}
