package pvesim

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// execDone runs argv through the agent and polls exec-status until it exits, as a client
// of the API does.
func (c *apiClient) execDone(vmid, input string, argv ...string) map[string]any {
	c.t.Helper()
	body := map[string]any{"command": argv}
	if input != "" {
		body["input-data"] = input
	}
	res := c.callJSON("POST", vmBase+vmid+"/agent/exec", body).ok(c.t).(map[string]any)
	pid := res["pid"].(float64)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		st := c.call("GET", vmBase+vmid+"/agent/exec-status", url.Values{"pid": {itoa(int(pid))}}).ok(c.t).(map[string]any)
		if st["exited"] == float64(1) {
			return st
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("exec %v did not exit", argv)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *apiClient) vmStatus(vmid string) map[string]any {
	c.t.Helper()
	return c.call("GET", vmBase+vmid+"/status/current", nil).ok(c.t).(map[string]any)
}

// A clone of the template boots its stand-in guest: the agent answers, exec runs real
// processes with their output, exit code and stdin; suspend freezes the guest (the agent
// cannot answer) and resume thaws it; stop and delete leave nothing behind.
func TestQemuGuestLifecycle(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	c.waitOK(s, c.callJSON("POST", vmBase+"9000/clone", map[string]any{"newid": 100}).upid(t))
	c.callJSON("PUT", vmBase+"100/config", map[string]any{"memory": "256", "cores": 1}).ok(t)
	c.waitOK(s, c.call("POST", vmBase+"100/status/start", nil).upid(t))
	st := c.vmStatus("100")
	if st["status"] != "running" || st["qmpstatus"] != "running" || st["agent"] != float64(1) || st["maxmem"] != float64(256<<20) || st["pid"] == nil {
		t.Fatalf("status of the started VM: %v", st)
	}
	if st := c.wait(s, c.call("POST", vmBase+"100/status/start", nil).upid(t)); st["exitstatus"] != "VM 100 already running" {
		t.Errorf("second start: %v", st["exitstatus"])
	}
	if r := c.call("POST", vmBase+"100/agent/ping", nil).ok(t).(map[string]any); r["result"] == nil {
		t.Errorf("ping: %v", r)
	}

	// output, exit code, stdin, the agent's bare environment and cwd
	r := c.execDone("100", "", "/bin/sh", "-c", "echo out; echo err >&2; pwd; env | sort; exit 7")
	if r["exitcode"] != float64(7) || r["err-data"] != "err\n" || !strings.HasPrefix(r["out-data"].(string), "out\n/\n") {
		t.Errorf("exec: %v", r)
	}
	if out := r["out-data"].(string); strings.Contains(out, "HOME=") || !strings.Contains(out, "PATH="+guestPath+"\n") {
		t.Errorf("exec environment: %q", out)
	}
	r = c.execDone("100", "line1\nlíne2\n", "cat")
	if r["exitcode"] != float64(0) || r["out-data"] != "line1\nlíne2\n" {
		t.Errorf("exec with input: %v", r)
	}
	// the process runs in the guest: its root is the guest's, not the host's
	r = c.execDone("100", "", "cat", "/etc/os-release")
	if !strings.Contains(r["out-data"].(string), "pvesim stand-in guest") {
		t.Errorf("exec ran outside the guest: %v", r)
	}
	a := c.callJSON("POST", vmBase+"100/agent/exec", map[string]any{"command": []string{"/no/such/program"}})
	if a.Code != 500 || !strings.Contains(a.Msg, "Agent error: Failed to execute child process") {
		t.Errorf("exec of a missing program: %d %q", a.Code, a.Msg)
	}
	// a finished process is forgotten once its status was read
	a = c.call("GET", vmBase+"100/agent/exec-status", url.Values{"pid": {"1001"}})
	if a.Code != 500 || a.Msg != "Agent error: Invalid parameter 'pid'\n" {
		t.Errorf("exec-status of a reaped pid: %d %q", a.Code, a.Msg)
	}

	// suspend freezes the guest: a process started before makes no progress
	res := c.callJSON("POST", vmBase+"100/agent/exec", map[string]any{"command": []string{"sh", "-c", "sleep 0.3; echo late"}}).ok(t).(map[string]any)
	c.waitOK(s, c.call("POST", vmBase+"100/status/suspend", nil).upid(t))
	if st := c.vmStatus("100"); st["status"] != "running" || st["qmpstatus"] != "paused" {
		t.Errorf("suspended status: %v", st)
	}
	a = c.call("POST", vmBase+"100/agent/ping", nil)
	if a.Code != 500 || a.Msg != "VM 100 qmp command 'guest-ping' failed - got timeout\n" {
		t.Errorf("ping of a paused VM: %d %q", a.Code, a.Msg)
	}
	g := s.vmGuest(s.vms[100])
	if st, _ := g.state(); st != "frozen" {
		t.Errorf("guest state %s, want frozen", st)
	}
	c.waitOK(s, c.call("POST", vmBase+"100/status/resume", nil).upid(t))
	if st := c.vmStatus("100"); st["qmpstatus"] != "running" {
		t.Errorf("resumed status: %v", st)
	}
	pid := int(res["pid"].(float64))
	for {
		st := c.call("GET", vmBase+"100/agent/exec-status", url.Values{"pid": {itoa(pid)}}).ok(t).(map[string]any)
		if st["exited"] == float64(1) {
			if st["out-data"] != "late\n" {
				t.Errorf("process across suspend: %v", st)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// the agent answers only while the guest has it installed
	if err := os.Remove("/proc/" + itoa(int(c.vmStatus("100")["pid"].(float64))) + "/root" + guestAgentBinary); err != nil {
		t.Fatal(err)
	}
	a = c.call("POST", vmBase+"100/agent/ping", nil)
	if a.Code != 500 || a.Msg != "QEMU guest agent is not running\n" {
		t.Errorf("ping without the agent: %d %q", a.Code, a.Msg)
	}

	a = c.call("DELETE", vmBase+"100", nil)
	if a.Code != 500 || a.Msg != "VM 100 is running - destroy failed\n" {
		t.Errorf("delete of a running VM: %d %q", a.Code, a.Msg)
	}
	c.waitOK(s, c.call("POST", vmBase+"100/status/stop", nil).upid(t))
	if st := c.vmStatus("100"); st["status"] != "stopped" || st["pid"] != nil {
		t.Errorf("stopped status: %v", st)
	}
	c.waitOK(s, c.call("DELETE", vmBase+"100", nil).upid(t))
	if n := len(c.call("GET", "/nodes/pvesim/qemu", nil).ok(t).([]any)); n != 1 {
		t.Errorf("%d VMs after delete, want the template only", n)
	}
}

// A snapshot with vmstate keeps the guest's memory: the processes, their in-memory
// state and tmpfs content are there again after the rollback, as on PVE. The stand-in
// resumes the very guest it froze, so it can do that once; a second rollback says so.
func TestQemuVMStateSnapshot(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	c.waitOK(s, c.callJSON("POST", vmBase+"9000/clone", map[string]any{"newid": 100}).upid(t))
	c.waitOK(s, c.call("POST", vmBase+"100/status/start", nil).upid(t))
	// a counter that lives only in a process's memory, reported on SIGUSR1, and a
	// token on tmpfs (memory) and on disk
	c.execDone("100", "", "sh", "-c", `setsid sh -c 'n=0; trap "echo \$n > /tmp/n" USR1; while :; do n=$((n+1)); sleep 0.05; done' >/dev/null 2>&1 </dev/null & echo $! > /tmp/counter.pid; echo mem-token > /dev/shm/token; echo disk-before > /root/file`)
	before, _ := c.execDone("100", "", "cat", "/tmp/counter.pid")["out-data"].(string)
	c.execDone("100", "", "sh", "-c", "sleep 0.3")
	c.waitOK(s, c.callJSON("POST", vmBase+"100/snapshot", map[string]any{"snapname": "ck1", "vmstate": 1, "description": "with RAM"}).upid(t))
	snaps := c.call("GET", vmBase+"100/snapshot", nil).ok(t).([]any)
	if len(snaps) != 2 || snaps[0].(map[string]any)["vmstate"] != float64(1) || snaps[1].(map[string]any)["name"] != "current" {
		t.Fatalf("snapshot list: %v", snaps)
	}
	if st := c.vmStatus("100"); st["status"] != "stopped" {
		t.Errorf("after a vmstate snapshot the stand-in VM is stopped: %v", st)
	}
	// the VM runs on from its disk meanwhile: tmpfs is empty, the disk changes
	c.waitOK(s, c.call("POST", vmBase+"100/status/start", nil).upid(t))
	if r := c.execDone("100", "", "cat", "/dev/shm/token"); r["exitcode"] == float64(0) {
		t.Errorf("a cold boot kept tmpfs: %v", r)
	}
	c.execDone("100", "", "sh", "-c", "echo disk-after > /root/file")

	c.waitOK(s, c.call("POST", vmBase+"100/snapshot/ck1/rollback", nil).upid(t))
	if st := c.vmStatus("100"); st["status"] != "running" || st["qmpstatus"] != "running" {
		t.Fatalf("after the rollback: %v", st)
	}
	if r := c.execDone("100", "", "cat", "/dev/shm/token", "/root/file", "/tmp/counter.pid"); r["out-data"] != "mem-token\ndisk-before\n"+before {
		t.Errorf("state after rollback: %v", r)
	}
	pid := strings.TrimSpace(before)
	c.execDone("100", "", "kill", "-USR1", pid)
	var n string
	for i := 0; i < 100 && n == ""; i++ {
		n, _ = c.execDone("100", "", "sh", "-c", "cat /tmp/n 2>/dev/null")["out-data"].(string)
		n = strings.TrimSpace(n)
		time.Sleep(20 * time.Millisecond)
	}
	if n == "" || n == "0" {
		t.Errorf("the counter process lost its memory: %q", n)
	}
	st := c.wait(s, c.call("POST", vmBase+"100/snapshot/ck1/rollback", nil).upid(t))
	if !strings.Contains(st["exitstatus"].(string), "can resume a vmstate snapshot only once") {
		t.Errorf("second rollback: %v", st["exitstatus"])
	}
	// a clone of the snapshot takes its disks, never its RAM
	c.waitOK(s, c.callJSON("POST", vmBase+"100/clone", map[string]any{"newid": 102, "snapname": "ck1"}).upid(t))
	c.waitOK(s, c.call("POST", vmBase+"102/status/start", nil).upid(t))
	if r := c.execDone("102", "", "cat", "/root/file"); r["out-data"] != "disk-before\n" {
		t.Errorf("clone of the snapshot: %v", r)
	}
	c.waitOK(s, c.call("DELETE", vmBase+"100/snapshot/ck1", nil).upid(t))
	for _, id := range []string{"100", "102"} {
		c.waitOK(s, c.call("POST", vmBase+id+"/status/stop", nil).upid(t))
		c.waitOK(s, c.call("DELETE", vmBase+id, nil).upid(t))
	}
}
