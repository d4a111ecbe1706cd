package pvesim

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const vmBase = "/nodes/pvesim/qemu/"

// The emulator starts with the template VM 9000: agent enabled, a template, on the
// snapshot storage, listed by the VM list and /cluster/resources, and named in
// lxcri.toml as [proxmox-vm] template_vmid.
func TestQemuTemplate(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	list := c.call("GET", "/nodes/pvesim/qemu", nil).ok(t).([]any)
	if len(list) != 1 {
		t.Fatalf("VM list: %v", list)
	}
	row := list[0].(map[string]any)
	if row["vmid"] != float64(TemplateVMID) || row["template"] != float64(1) || row["status"] != "stopped" {
		t.Errorf("template row: %v", row)
	}
	conf := c.call("GET", vmBase+"9000/config", nil).ok(t).(map[string]any)
	if conf["agent"] != "1" || conf["template"] != float64(1) || !strings.HasPrefix(conf["scsi0"].(string), DefaultStorage+":base-9000-disk-0,") {
		t.Errorf("template config: %v", conf)
	}
	if d, _ := conf["digest"].(string); len(d) != 40 {
		t.Errorf("digest %q", conf["digest"])
	}
	res := c.call("GET", "/cluster/resources", url.Values{"type": {"vm"}}).ok(t).([]any)
	found := false
	for _, r := range res {
		m := r.(map[string]any)
		if m["id"] == "qemu/9000" && m["type"] == "qemu" && m["template"] == float64(1) {
			found = true
		}
	}
	if !found {
		t.Errorf("/cluster/resources has no qemu/9000: %v", res)
	}
	a := c.call("GET", "/cluster/nextid", url.Values{"vmid": {"9000"}})
	if a.Code != http.StatusBadRequest || a.Errors["vmid"] != "VM 9000 already exists" {
		t.Errorf("nextid of the template's VMID: %d %v", a.Code, a.Errors)
	}
	tb, _ := os.ReadFile(filepath.Join(s.Dir(), "lxcri.toml"))
	if !strings.Contains(string(tb), "[proxmox-vm]\ntemplate_vmid = 9000\n") {
		t.Errorf("lxcri.toml names no template:\n%s", tb)
	}
	have := map[string]bool{}
	for _, r := range s.Routes() {
		have[r] = true
	}
	for _, want := range []string{
		"GET /nodes/{node}/qemu", "GET /nodes/{node}/qemu/{vmid}/config", "PUT /nodes/{node}/qemu/{vmid}/config",
		"POST /nodes/{node}/qemu/{vmid}/clone", "DELETE /nodes/{node}/qemu/{vmid}",
		"GET /nodes/{node}/qemu/{vmid}/status/current", "POST /nodes/{node}/qemu/{vmid}/status/start",
		"POST /nodes/{node}/qemu/{vmid}/status/stop", "POST /nodes/{node}/qemu/{vmid}/status/shutdown",
		"POST /nodes/{node}/qemu/{vmid}/status/suspend", "POST /nodes/{node}/qemu/{vmid}/status/resume",
		"GET /nodes/{node}/qemu/{vmid}/snapshot", "POST /nodes/{node}/qemu/{vmid}/snapshot",
		"DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}", "POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
		"POST /nodes/{node}/qemu/{vmid}/agent/ping", "POST /nodes/{node}/qemu/{vmid}/agent/exec",
		"GET /nodes/{node}/qemu/{vmid}/agent/exec-status",
	} {
		if !have[want] {
			t.Errorf("%s is not served", want)
		}
	}
	// the guest OS on its disk has an init and the agent
	root, _ := s.storages[DefaultStorage].volPath("base-9000-disk-0")
	for _, f := range []string{"sbin/init", "usr/sbin/qemu-ga", "bin/busybox", "bin/sh"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("guest OS: %v", err)
		}
	}
}

// The QEMU endpoints check their parameters against the schema as every other.
func TestQemuSchemaRejects(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		form   url.Values
		json   map[string]any
		want   map[string]string
	}{
		{"clone newid", "POST", vmBase + "9000/clone", url.Values{"newid": {"99"}}, nil,
			map[string]string{"newid": "invalid format - value does not look like a valid VM ID\n"}},
		{"clone newid missing", "POST", vmBase + "9000/clone", url.Values{}, nil,
			map[string]string{"newid": "property is missing and it is not optional"}},
		{"snapshot vmstate true", "POST", vmBase + "9000/snapshot", url.Values{"snapname": {"s1"}, "vmstate": {"true"}}, nil,
			map[string]string{"vmstate": "type check ('boolean') failed - got 'true'"}},
		{"snapshot name", "POST", vmBase + "9000/snapshot", url.Values{"snapname": {"1s"}}, nil,
			map[string]string{"snapname": "invalid format - invalid configuration ID '1s'\n"}},
		{"exec input too long", "POST", vmBase + "9000/agent/exec", nil, map[string]any{"command": []string{"cat"}, "input-data": strings.Repeat("x", 65537)},
			map[string]string{"input-data": "value may only be 65536 characters long"}},
		{"exec no command", "POST", vmBase + "9000/agent/exec", nil, map[string]any{},
			map[string]string{"command": "property is missing and it is not optional"}},
		{"exec-status pid", "GET", vmBase + "9000/agent/exec-status", url.Values{"pid": {"x"}}, nil,
			map[string]string{"pid": "type check ('integer') failed - got 'x'"}},
		{"config memory", "PUT", vmBase + "9000/config", url.Values{"cores": {"0"}}, nil,
			map[string]string{"cores": "value must have a minimum value of 1"}},
		{"config unknown", "PUT", vmBase + "9000/config", url.Values{"entrypoint": {"/bin/sh"}}, nil,
			map[string]string{"entrypoint": "property is not defined in schema and the schema does not allow additional properties"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a answer
			if tc.json != nil {
				a = c.callJSON(tc.method, tc.path, tc.json)
			} else {
				a = c.call(tc.method, tc.path, tc.form)
			}
			if a.Code != http.StatusBadRequest || a.Msg != "Parameter verification failed.\n" {
				t.Fatalf("got %d %q %v, want 400 Parameter verification failed.", a.Code, a.Msg, a.Errors)
			}
			for k, v := range tc.want {
				if a.Errors[k] != v {
					t.Errorf("errors[%s] = %q, want %q (all: %q)", k, a.Errors[k], v, a.Errors)
				}
			}
			if len(a.Errors) != len(tc.want) {
				t.Errorf("errors = %q, want only %q", a.Errors, tc.want)
			}
		})
	}
}

// PVE's answers about VMs in the wrong state, without running a guest.
func TestQemuQuirks(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	for _, tc := range []struct {
		name, method, path string
		json               map[string]any
		code               int
		msg                string
	}{
		{"missing VM", "GET", vmBase + "123/status/current", nil, 500, "Configuration file 'nodes/pvesim/qemu-server/123.conf' does not exist\n"},
		{"agent of a stopped VM", "POST", vmBase + "9000/agent/ping", nil, 500, "VM 9000 is not running\n"},
		{"exec on a stopped VM", "POST", vmBase + "9000/agent/exec", map[string]any{"command": []string{"true"}}, 500, "VM 9000 is not running\n"},
		{"suspend a stopped VM", "POST", vmBase + "9000/status/suspend", nil, 500, "VM 9000 not running\n"},
		{"resume a stopped VM", "POST", vmBase + "9000/status/resume", nil, 500, "VM 9000 not running\n"},
		{"reserved snapshot name", "POST", vmBase + "9000/snapshot", map[string]any{"snapname": "current"}, 500, "unable to use snapshot name 'current' (reserved name)\n"},
		{"linked clone storage", "POST", vmBase + "9000/clone", map[string]any{"newid": 100, "full": 0, "storage": "local"}, 500, "parameter 'storage' not allowed for linked clones\n"},
		{"clone onto a taken VMID", "POST", vmBase + "9000/clone", map[string]any{"newid": 9000}, 500, "unable to create VM 9000: config file already exists\n"},
		{"args is root's", "PUT", vmBase + "9000/config", map[string]any{"args": "-foo"}, 403, "Permission check failed (changing 'args' is only allowed for root@pam)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := c.callJSON(tc.method, tc.path, tc.json)
			if a.Code != tc.code || a.Msg != tc.msg {
				t.Fatalf("got %d %q %v, want %d %q", a.Code, a.Msg, a.Errors, tc.code, tc.msg)
			}
		})
	}
	// lengths are characters, as Perl counts them: 64 KiB of U+00E9 (one byte each for the
	// agent) passes, though it is 128 KiB of UTF-8
	if a := c.callJSON("POST", vmBase+"9000/agent/exec", map[string]any{"command": []string{"cat"}, "input-data": strings.Repeat("\u00e9", 65536)}); a.Code != 500 || a.Msg != "VM 9000 is not running\n" {
		t.Errorf("64 KiB of 2-byte characters: %d %q %v", a.Code, a.Msg, a.Errors)
	}
	// a template does not start: the task says why
	st := c.wait(s, c.call("POST", vmBase+"9000/status/start", nil).upid(t))
	if st["exitstatus"] != "you can't start a vm if it's a template" || !strings.Contains(st["upid"].(string), ":qmstart:9000:") {
		t.Errorf("start of the template: %v", st)
	}
}

// A linked clone of the template is a VM of its own (new MAC, UUID and name, its own
// disk, no template flag), listed while it exists and gone after delete; the template's
// disk is untouched.
func TestQemuCloneDelete(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	c.waitOK(s, c.callJSON("POST", vmBase+"9000/clone", map[string]any{"newid": 101, "name": "ctr-a"}).upid(t))
	tmpl := c.call("GET", vmBase+"9000/config", nil).ok(t).(map[string]any)
	conf := c.call("GET", vmBase+"101/config", nil).ok(t).(map[string]any)
	if conf["name"] != "ctr-a" || conf["template"] != nil || conf["lock"] != nil || conf["agent"] != "1" {
		t.Errorf("clone config: %v", conf)
	}
	if conf["net0"] == tmpl["net0"] || conf["smbios1"] == tmpl["smbios1"] || conf["vmgenid"] == tmpl["vmgenid"] {
		t.Errorf("clone kept the template's identity: %v", conf)
	}
	if !strings.HasPrefix(conf["scsi0"].(string), DefaultStorage+":vm-101-disk-0,") {
		t.Errorf("clone disk: %v", conf["scsi0"])
	}
	p, _ := s.storages[DefaultStorage].volPath("vm-101-disk-0")
	if _, err := os.Stat(filepath.Join(p, "sbin/init")); err != nil {
		t.Errorf("clone disk has no guest OS: %v", err)
	}
	// config changes: set and delete, digest checked
	c.callJSON("PUT", vmBase+"101/config", map[string]any{"memory": "256", "cores": 2, "tags": "lxcri;b", "digest": conf["digest"]}).ok(t)
	a := c.callJSON("PUT", vmBase+"101/config", map[string]any{"memory": "128", "digest": conf["digest"]})
	if a.Code != 500 || !strings.Contains(a.Msg, "detected modified configuration") {
		t.Errorf("stale digest: %d %q", a.Code, a.Msg)
	}
	c.waitOK(s, c.callJSON("POST", vmBase+"101/config", map[string]any{"delete": "tags"}).upid(t))
	conf = c.call("GET", vmBase+"101/config", nil).ok(t).(map[string]any)
	if conf["memory"] != "256" || conf["cores"] != float64(2) || conf["tags"] != nil {
		t.Errorf("config after changes: %v", conf)
	}
	if n := len(c.call("GET", "/nodes/pvesim/qemu", nil).ok(t).([]any)); n != 2 {
		t.Errorf("%d VMs listed, want 2", n)
	}
	c.waitOK(s, c.call("DELETE", vmBase+"101", url.Values{"purge": {"1"}}).upid(t))
	if n := len(c.call("GET", "/nodes/pvesim/qemu", nil).ok(t).([]any)); n != 1 {
		t.Errorf("%d VMs listed after delete, want 1", n)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("the clone's disk is left: %v", err)
	}
	root, _ := s.storages[DefaultStorage].volPath("base-9000-disk-0")
	if _, err := os.Stat(filepath.Join(root, "sbin/init")); err != nil {
		t.Errorf("template disk: %v", err)
	}
}

// Faults apply to the QEMU endpoints as to any other: a clone whose task fails leaves no
// VM behind, an injected 500 answers in PVE's shape.
func TestQemuFaults(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	if err := s.AddFault(Fault{Method: "POST", Path: `^/nodes/[^/]+/qemu/\d+/clone$`, Kind: FaultTaskFail, Message: "storage full", Times: 1}); err != nil {
		t.Fatal(err)
	}
	st := c.wait(s, c.callJSON("POST", vmBase+"9000/clone", map[string]any{"newid": 100}).upid(t))
	if st["exitstatus"] != "storage full" {
		t.Errorf("clone with a failing task: %v", st)
	}
	if n := len(c.call("GET", "/nodes/pvesim/qemu", nil).ok(t).([]any)); n != 1 {
		t.Errorf("a failed clone left a VM: %d listed", n)
	}
	if err := s.AddFault(Fault{Path: `/agent/ping$`, Kind: FaultError, Status: 500, Message: "QEMU guest agent is not running", Times: 1}); err != nil {
		t.Fatal(err)
	}
	a := c.call("POST", vmBase+"9000/agent/ping", nil)
	if a.Code != 500 || a.Msg != "QEMU guest agent is not running\n" {
		t.Errorf("injected agent error: %d %q", a.Code, a.Msg)
	}
	// the fault is used up: the real answer follows
	if a := c.call("POST", vmBase+"9000/agent/ping", nil); a.Msg != "VM 9000 is not running\n" {
		t.Errorf("after the fault: %d %q", a.Code, a.Msg)
	}
}
