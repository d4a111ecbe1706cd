package pvesim

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lxc/go-lxc"
)

func requireRootLXC(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test runs real LXC containers and needs root")
	}
	if _, err := os.Stat("/usr/share/lxc/config/common.conf"); err != nil {
		t.Fatalf("LXC is not installed (%v); contrib/scripts/setup-host.sh installs it", err)
	}
}

// lxcDir is a directory for an emulator running unprivileged CTs: their root (host uid
// 100000) must be able to reach the rootfs, and t.TempDir's parents are private.
func lxcDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pvesim-lxc-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func uploadPath(t *testing.T, c *apiClient, storageID, name, path string) string {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	w.WriteField("content", "vztmpl")
	fw, _ := w.CreateFormFile("filename", name)
	fw.Write(body)
	w.Close()
	req, _ := http.NewRequest("POST", c.base+"/nodes/pvesim/storage/"+storageID+"/upload", &b)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return c.send(req).upid(t)
}

func statusOf(t *testing.T, c *apiClient, vmid int) map[string]any {
	t.Helper()
	return c.call("GET", "/nodes/pvesim/lxc/"+strconv.Itoa(vmid)+"/status/current", nil).ok(t).(map[string]any)
}

// dumpCT logs what LXC and the CT's console said, for a CT that is not as expected.
func dumpCT(t *testing.T, s *Server, vmid int) {
	t.Helper()
	for _, f := range []string{"config", "lxc.log", "console.log"} {
		b, err := os.ReadFile(filepath.Join(s.LXCPath(), strconv.Itoa(vmid), f))
		t.Logf("CT %d %s (%v):\n%s", vmid, f, err, tail(string(b), 60))
	}
}

func readCgroup(t *testing.T, s *Server, vmid int, controller, file string) string {
	t.Helper()
	p := filepath.Join("/sys/fs/cgroup", controller, s.cgroupDir(vmid), file)
	if cgroupV2() {
		p = filepath.Join("/sys/fs/cgroup", s.cgroupDir(vmid), file)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("cgroup of CT %d: %v", vmid, err)
	}
	return strings.TrimSpace(string(b))
}

// notInCTCgroups fails if this process (the emulator) sits in one of its CTs' cgroups:
// liblxc moves the process that calls a daemonized start into the monitor's cgroup (its
// "transient" pid), where it would keep that cgroup busy after the CT stops, so that the
// CT's next start could not create it again.
func notInCTCgroups(t *testing.T, s *Server) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), s.cgroupPrefix) {
		t.Fatalf("the emulator's process was moved into a CT's cgroup:\n%s", b)
	}
}

// noLeftovers fails if a closed emulator left LXC containers, monitors, mounts or cgroups.
func noLeftovers(t *testing.T, s *Server) {
	t.Helper()
	if names := lxc.ContainerNames(s.LXCPath()); len(names) != 0 {
		t.Errorf("LXC containers left in %s: %v", s.LXCPath(), names)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, s.Dir()) {
			t.Errorf("mount left: %s", l)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s.LXCPath())) {
			t.Errorf("process left: %s %q", p, b)
		}
	}
	if left := s.CgroupLeftovers(); len(left) != 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// A CT's whole life on real LXC, through the HTTPS API: create from an OCI archive
// (uploaded through the API), start, status with pid, config get/put, limits in its
// cgroup, snapshot, stop and start, rollback, clone from the snapshot and start the clone,
// suspend/resume, shutdown, delete; nothing is left in the LXC path, the storage, the
// mount table, the process table or the cgroups.
func TestCTLifecycle(t *testing.T) {
	requireRootLXC(t)
	s, err := New(Config{Dir: lxcDir(t), AuthFailDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	c := newClient(t, s)
	c.waitOK(s, uploadPath(t, c, "local", "app_1.tar", busyboxArchive(t, "docker.io/library/app:1", appCmd)))

	// create: the env given is overwritten by the image's Env (PVE 9.1's behaviour)
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc", url.Values{
		"vmid": {"100"}, "ostemplate": {"local:vztmpl/app_1.tar"}, "rootfs": {"simpool:1"},
		"hostname": {"ct100"}, "memory": {"64"}, "swap": {"32"}, "cores": {"1"}, "cpulimit": {"0.5"},
		"tags": {"ns-default;lxcri"}, "env": {"FOO=ignored"}, "net0": {"name=eth0,bridge=vmbr0"},
	}).upid(t))
	conf := configOf(t, c, 100)
	if conf["entrypoint"] != `/bin/sh -c 'trap "exit 0" TERM; while :; do sleep 1; done'` || conf["cmode"] != "console" {
		t.Fatalf("entrypoint/cmode from the image: %q %q", conf["entrypoint"], conf["cmode"])
	}
	if !strings.HasPrefix(conf["env"].(string), "PATH=") {
		t.Fatalf("env = %q, want the image's Env", conf["env"])
	}
	if conf["net0"] != "name=eth0,bridge=vmbr0,host-managed=1" || conf["unprivileged"] != float64(1) || conf["memory"] != float64(64) || conf["tags"] != "lxcri;ns-default" {
		t.Fatalf("config %v", conf)
	}
	if !strings.HasPrefix(conf["rootfs"].(string), "simpool:subvol-100-disk-0,size=1G") {
		t.Fatalf("rootfs %q", conf["rootfs"])
	}
	rootfs := filepath.Join(s.storages[DefaultStorage].path, "images", "100", "subvol-100-disk-0")
	if _, err := os.Stat(filepath.Join(rootfs, "bin", "busybox")); err != nil {
		t.Fatalf("rootfs volume: %v", err)
	}
	// env is set after create, as PVE users must
	c.call("PUT", "/nodes/pvesim/lxc/100/config", url.Values{"env": {"FOO=bar baz\x00PATH=/bin:/usr/bin"}, "digest": {conf["digest"].(string)}}).ok(t)
	if a := c.call("PUT", "/nodes/pvesim/lxc/100/config", url.Values{"env": {"X=1"}, "digest": {conf["digest"].(string)}}); a.Code != 500 || !strings.HasPrefix(a.Msg, "detected modified configuration") {
		t.Fatalf("stale digest: %d %q", a.Code, a.Msg)
	}
	if a := c.call("PUT", "/nodes/pvesim/lxc/100/config", url.Values{"dev0": {"path=/dev/null"}}); a.Code != 403 {
		t.Fatalf("device passthrough by a token: %d %q", a.Code, a.Msg)
	}
	if conf := configOf(t, c, 100); conf["env"] != "FOO=bar baz\x00PATH=/bin:/usr/bin" {
		t.Fatalf("env after PUT: %q", conf["env"])
	}

	if st := statusOf(t, c, 100); st["status"] != "stopped" || st["pid"] != nil {
		t.Fatalf("before start: %v", st)
	}
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/100/status/start", nil).upid(t))
	notInCTCgroups(t, s)
	st := statusOf(t, c, 100)
	pid, _ := st["pid"].(float64)
	if st["status"] != "running" {
		dumpCT(t, s, 100)
	}
	if st["status"] != "running" || pid <= 0 || st["maxmem"] != float64(64<<20) || st["maxswap"] != float64(32<<20) || st["type"] != "lxc" || st["vmid"] != float64(100) || st["name"] != "ct100" {
		t.Fatalf("running: %v", st)
	}
	environ, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/environ")
	if err != nil || !bytes.Contains(environ, []byte("FOO=bar baz\x00")) {
		t.Fatalf("init's environment %q: %v", environ, err)
	}
	if status, _ := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status"); !strings.Contains(string(status), "Uid:\t100000") {
		t.Fatalf("unprivileged CT's init does not run as host uid 100000:\n%s", status)
	}
	if !cgroupV2() {
		if v := readCgroup(t, s, 100, "memory", "memory.limit_in_bytes"); v != strconv.Itoa(64<<20) {
			t.Fatalf("memory limit %s", v)
		}
		if v := readCgroup(t, s, 100, "cpu", "cpu.cfs_quota_us"); v != "50000" {
			t.Fatalf("cpu quota %s", v)
		}
	}
	if a := c.call("POST", "/nodes/pvesim/lxc/100/status/start", nil); a.Code != 500 || a.Msg != "CT 100 already running\n" {
		t.Fatalf("second start: %d %q", a.Code, a.Msg)
	}
	if a := c.call("DELETE", "/nodes/pvesim/lxc/100", nil); a.Code != 500 || a.Msg != "unable to destroy CT 100 - container is running\n" {
		t.Fatalf("delete running: %d %q", a.Code, a.Msg)
	}
	list := c.call("GET", "/nodes/pvesim/lxc", nil).ok(t).([]any)
	if len(list) != 1 || list[0].(map[string]any)["status"] != "running" || list[0].(map[string]any)["tags"] != "lxcri;ns-default" {
		t.Fatalf("list: %v", list)
	}

	// snapshot of the running CT; a file written after it; stop; start again (the
	// monitor's cgroup of the first run must be free for the second)
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/100/snapshot", url.Values{"snapname": {"s1"}, "description": {"first"}}).upid(t))
	if a := c.call("POST", "/nodes/pvesim/lxc/100/snapshot", url.Values{"snapname": {"current"}}); a.Code != 500 || a.Msg != "unable to use snapshot name 'current' (reserved name)\n" {
		t.Fatalf("reserved snapshot name: %d %q", a.Code, a.Msg)
	}
	snaps := c.call("GET", "/nodes/pvesim/lxc/100/snapshot", nil).ok(t).([]any)
	last := snaps[len(snaps)-1].(map[string]any)
	if len(snaps) != 2 || snaps[0].(map[string]any)["name"] != "s1" || snaps[0].(map[string]any)["description"] != "first" || last["name"] != "current" || last["description"] != "You are here!" || last["parent"] != "s1" || last["running"] != float64(1) {
		t.Fatalf("snapshots: %v", snaps)
	}
	if state, _ := s.ctState(100); state != "running" {
		t.Fatalf("after snapshot: %s, want running (thawed)", state)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "after-s1"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.call("PUT", "/nodes/pvesim/lxc/100/config", url.Values{"memory": {"128"}}).ok(t)
	if !cgroupV2() {
		if v := readCgroup(t, s, 100, "memory", "memory.limit_in_bytes"); v != strconv.Itoa(128<<20) {
			t.Fatalf("memory limit hot-applied: %s", v)
		}
	}
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/100/status/stop", nil).upid(t))
	if st := statusOf(t, c, 100); st["status"] != "stopped" || st["pid"] != nil {
		t.Fatalf("after stop: %v", st)
	}
	if a := c.call("POST", "/nodes/pvesim/lxc/100/status/stop", nil); a.Code != 500 || a.Msg != "CT 100 not running\n" {
		t.Fatalf("stop stopped: %d %q", a.Code, a.Msg)
	}
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/100/status/start", nil).upid(t))
	notInCTCgroups(t, s)
	if st := statusOf(t, c, 100); st["status"] != "running" || st["pid"] == pid {
		t.Fatalf("started again: %v", st)
	}
	pid, _ = statusOf(t, c, 100)["pid"].(float64)

	// rollback of the running CT with start: stopped, disk and config restored, started
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/100/snapshot/s1/rollback", url.Values{"start": {"1"}}).upid(t))
	if _, err := os.Stat(filepath.Join(rootfs, "after-s1")); !os.IsNotExist(err) {
		t.Fatalf("file written after the snapshot survived the rollback: %v", err)
	}
	if conf := configOf(t, c, 100); conf["memory"] != float64(64) {
		t.Fatalf("config after rollback: memory %v", conf["memory"])
	}
	notInCTCgroups(t, s)
	if st := statusOf(t, c, 100); st["status"] != "running" || st["pid"] == pid {
		t.Fatalf("after rollback with start: %v", st)
	}

	// clone: a full clone of a running CT needs a snapshot
	if a := c.call("POST", "/nodes/pvesim/lxc/100/clone", url.Values{"newid": {"101"}}); a.Code != 500 || a.Msg != "Full clone of a running container is only possible from a snapshot\n" {
		t.Fatalf("clone running: %d %q", a.Code, a.Msg)
	}
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/100/clone", url.Values{"newid": {"101"}, "snapname": {"s1"}, "hostname": {"ct101"}}).upid(t))
	conf101 := configOf(t, c, 101)
	if conf101["hostname"] != "ct101" || !strings.HasPrefix(conf101["rootfs"].(string), "simpool:subvol-101-disk-0") || conf101["lock"] != nil {
		t.Fatalf("clone config: %v", conf101)
	}
	if !strings.Contains(conf101["net0"].(string), "hwaddr=BC:24:11:") {
		t.Fatalf("clone has no new MAC: %v", conf101["net0"])
	}
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/101/status/start", nil).upid(t))
	if st := statusOf(t, c, 101); st["status"] != "running" || st["name"] != "ct101" {
		dumpCT(t, s, 101)
		t.Fatalf("clone: %v", st)
	}
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/101/status/stop", nil).upid(t))
	c.waitOK(s, c.call("DELETE", "/nodes/pvesim/lxc/101", url.Values{"purge": {"1"}}).upid(t))

	// suspend freezes, resume thaws
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/100/status/suspend", nil).upid(t))
	if state, _ := s.ctState(100); state != "frozen" {
		t.Fatalf("after suspend: %s", state)
	}
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/100/status/resume", nil).upid(t))
	if state, _ := s.ctState(100); state != "running" {
		t.Fatalf("after resume: %s", state)
	}

	// shutdown by the halt signal, snapshot delete, delete
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc/100/status/shutdown", url.Values{"timeout": {"30"}}).upid(t))
	if st := statusOf(t, c, 100); st["status"] != "stopped" {
		t.Fatalf("after shutdown: %v", st)
	}
	c.waitOK(s, c.call("DELETE", "/nodes/pvesim/lxc/100/snapshot/s1", nil).upid(t))
	if snaps := c.call("GET", "/nodes/pvesim/lxc/100/snapshot", nil).ok(t).([]any); len(snaps) != 1 {
		t.Fatalf("snapshots after delete: %v", snaps)
	}
	c.waitOK(s, c.call("DELETE", "/nodes/pvesim/lxc/100", url.Values{"force": {"1"}, "purge": {"1"}, "destroy-unreferenced-disks": {"1"}}).upid(t))
	if list := c.call("GET", "/nodes/pvesim/lxc", nil).ok(t).([]any); len(list) != 0 {
		t.Fatalf("list after delete: %v", list)
	}
	if a := c.call("GET", "/nodes/pvesim/lxc/100/config", nil); a.Code != 500 || a.Msg != "Configuration file 'nodes/pvesim/lxc/100.conf' does not exist\n" {
		t.Fatalf("config after delete: %d %q", a.Code, a.Msg)
	}
	if ents, _ := os.ReadDir(s.LXCPath()); len(ents) != 0 {
		t.Fatalf("LXC path not empty: %v", ents)
	}
	// The template VM's disk is the only volume the emulator starts with.
	if ents, _ := os.ReadDir(filepath.Join(s.storages[DefaultStorage].path, "images")); len(ents) != 1 || ents[0].Name() != strconv.Itoa(TemplateVMID) {
		t.Fatalf("storage holds more than the template VM's disk: %v", ents)
	}
	closed = true
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	noLeftovers(t, s)
}

// Snapshots need a storage with the snapshot feature: on "local" the task fails as in PVE.
func TestSnapshotUnsupportedStorage(t *testing.T) {
	requireRootLXC(t)
	s := newTestServer(t)
	c := newClient(t, s)
	tmpl := putTemplate(t, s, busyboxArchive(t, "docker.io/library/app:1", appCmd), "app_1.tar")
	c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc", url.Values{"vmid": {"102"}, "ostemplate": {tmpl}, "rootfs": {"local:1"}}).upid(t))
	upid := c.call("POST", "/nodes/pvesim/lxc/102/snapshot", url.Values{"snapname": {"s1"}}).upid(t)
	if st := c.wait(s, upid); st["exitstatus"] != "snapshot feature is not available" {
		t.Fatalf("snapshot on local: %v", st)
	}
	if log := c.taskLog(s, upid); !strings.HasSuffix(log, "TASK ERROR: snapshot feature is not available\n") {
		t.Fatalf("snapshot task log: %q", log)
	}
	if snaps := c.call("GET", "/nodes/pvesim/lxc/102/snapshot", nil).ok(t).([]any); len(snaps) != 1 || snaps[0].(map[string]any)["parent"] != nil {
		t.Fatalf("snapshots after the refused one: %v", snaps)
	}
	if a := c.call("GET", "/cluster/nextid", url.Values{"vmid": {"102"}}); a.Code != 400 || a.Errors["vmid"] != "VM 102 already exists" {
		t.Fatalf("nextid of a taken vmid: %d %v", a.Code, a.Errors)
	}
	if id := c.call("GET", "/cluster/nextid", nil).ok(t); id != "100" {
		t.Fatalf("nextid: %v", id)
	}
	if a := c.call("POST", "/nodes/pvesim/lxc", url.Values{"vmid": {"102"}, "ostemplate": {tmpl}}); a.Code != 500 || a.Msg != "CT 102 already exists on node 'pvesim'\n" {
		t.Fatalf("create over an existing CT: %d %q", a.Code, a.Msg)
	}
	c.waitOK(s, c.call("DELETE", "/nodes/pvesim/lxc/102", nil).upid(t))
}
