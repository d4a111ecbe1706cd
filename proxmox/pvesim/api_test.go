package pvesim

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/runtime"
)

// The requests below are ones real PVE rejects with 400 "Parameter verification failed."
// and these per-parameter errors (PVE::JSONSchema's messages); the emulator must reject
// them the same way, from the schema alone.
func TestSchemaRejects(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	create := "/nodes/pvesim/lxc"
	tmpl := "local:vztmpl/x.tar"
	for _, tc := range []struct {
		name   string
		method string
		path   string
		form   url.Values
		json   map[string]any
		want   map[string]string
	}{
		{"integer", "GET", "/cluster/nextid", url.Values{"vmid": {"abc"}}, nil,
			map[string]string{"vmid": "type check ('integer') failed - got 'abc'"}},
		// the format is checked before the bounds, as in check_prop
		{"format before minimum", "GET", "/cluster/nextid", url.Values{"vmid": {"99"}}, nil,
			map[string]string{"vmid": "invalid format - value does not look like a valid VM ID\n"}},
		{"minimum", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "memory": {"8"}}, nil,
			map[string]string{"memory": "value must have a minimum value of 16"}},
		{"maximum", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "tty": {"7"}}, nil,
			map[string]string{"tty": "value must have a maximum value of 6"}},
		{"boolean string true", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "start": {"true"}}, nil,
			map[string]string{"start": "type check ('boolean') failed - got 'true'"}},
		{"boolean JSON string", "POST", create, nil, map[string]any{"vmid": 100, "ostemplate": tmpl, "onboot": "false"},
			map[string]string{"onboot": "type check ('boolean') failed - got 'false'"}},
		{"integer JSON boolean", "POST", create, nil, map[string]any{"vmid": 100, "ostemplate": tmpl, "memory": true},
			map[string]string{"memory": "type check ('integer') failed - got JSON::PP::Boolean"}},
		{"required", "POST", create, url.Values{"vmid": {"100"}}, nil,
			map[string]string{"ostemplate": "property is missing and it is not optional"}},
		{"additional property", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "lxc.init.cmd": {"/bin/sh"}}, nil,
			map[string]string{"lxc.init.cmd": "property is not defined in schema and the schema does not allow additional properties"}},
		{"enum", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "cmode": {"bogus"}}, nil,
			map[string]string{"cmode": "value 'bogus' does not have a value in the enumeration 'shell, console, tty'"}},
		{"format dns-name", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "hostname": {"bad_name"}}, nil,
			map[string]string{"hostname": "invalid format - value does not look like a valid DNS name\n"}},
		{"format tag list", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "tags": {"ok;b@d"}}, nil,
			map[string]string{"tags": "invalid format - invalid characters in tag\n"}},
		{"pattern", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "env": {"A=1\x01"}}, nil,
			map[string]string{"env": "value does not match the regex pattern"}},
		{"property string key", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "net0": {"name=eth0,colour=red"}}, nil,
			map[string]string{"net0": "invalid format - invalid key in comma-separated list property: colour\n"}},
		{"property string value", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "net0": {"name=eth0,tag=5000"}}, nil,
			map[string]string{"net0": "invalid format - format error\nnet0.tag: value must have a maximum value of 4094\n"}},
		{"property string required key", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "net0": {"bridge=vmbr0"}}, nil,
			map[string]string{"net0": "invalid format - format error\nnet0.name: property is missing and it is not optional\n"}},
		{"indexed key out of range", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "net32": {"name=eth0"}}, nil,
			map[string]string{"net32": "property is not defined in schema and the schema does not allow additional properties"}},
		{"requires", "POST", create, url.Values{"vmid": {"100"}, "ostemplate": {tmpl}, "unique": {"1"}}, nil,
			map[string]string{"restore": "missing property required by 'unique'"}},
		{"path node", "GET", "/nodes/bad_node/lxc", nil, nil,
			map[string]string{"node": "invalid format - value does not look like a valid node name\n"}},
		{"path vmid", "GET", "/nodes/pvesim/lxc/abc/status/current", nil, nil,
			map[string]string{"vmid": "type check ('integer') failed - got 'abc'"}},
		{"path snapname", "DELETE", "/nodes/pvesim/lxc/100/snapshot/1abc", nil, nil,
			map[string]string{"snapname": "invalid format - invalid configuration ID '1abc'\n"}},
		{"oci reference without tag", "POST", "/nodes/pvesim/storage/local/oci-registry-pull", url.Values{"reference": {"127.0.0.1:5000/busybox"}}, nil,
			map[string]string{"reference": "value does not match the regex pattern"}},
		{"storage id", "GET", "/nodes/pvesim/storage/l/content", nil, nil,
			map[string]string{"storage": "invalid format - storage ID 'l' cannot be shorter than 2 characters\n"}},
		{"task log start", "GET", "/nodes/pvesim/tasks/x/log", url.Values{"start": {"-1"}}, nil,
			map[string]string{"start": "value must have a minimum value of 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a answer
			if tc.json != nil {
				a = c.callJSON(tc.method, tc.path, tc.json)
			} else {
				a = c.call(tc.method, tc.path, tc.form)
			}
			if a.Code != http.StatusBadRequest || a.Status != "Parameter verification failed." || a.Msg != "Parameter verification failed.\n" {
				t.Fatalf("got %d %q %q %v, want 400 Parameter verification failed.", a.Code, a.Status, a.Msg, a.Errors)
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

// What real PVE accepts passes the schema: JSON booleans and numbers, 0/1 booleans.
func TestSchemaAccepts(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	for _, tc := range []struct {
		name string
		json map[string]any
		form url.Values
	}{
		{"JSON types", map[string]any{"vmid": 100, "ostemplate": "local:vztmpl/none.tar", "start": true, "memory": 64, "cpulimit": 0.5, "net0": "name=eth0,bridge=vmbr0,firewall=yes", "tags": "a;b c,d"}, nil},
		{"form 0/1", nil, url.Values{"vmid": {"100"}, "ostemplate": {"local:vztmpl/none.tar"}, "start": {"0"}, "unprivileged": {"1"}, "rootfs": {"simpool:1"}, "env": {"A=1\x00B=two words"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a answer
			if tc.json != nil {
				a = c.callJSON("POST", "/nodes/pvesim/lxc", tc.json)
			} else {
				a = c.call("POST", "/nodes/pvesim/lxc", tc.form)
			}
			// the parameters are valid: what fails is the missing template
			if a.Code != http.StatusInternalServerError || a.Msg != "volume 'local:vztmpl/none.tar' does not exist\n" {
				t.Fatalf("got %d %q %v", a.Code, a.Msg, a.Errors)
			}
		})
	}
}

// Every route the emulator serves is a method of the schema; the served set is the one
// the backends need.
func TestRoutesInSchema(t *testing.T) {
	s, err := New(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	have := map[string]bool{}
	for _, r := range s.Routes() {
		verb, p, _ := strings.Cut(r, " ")
		if s.schema.Method(verb, p) == nil {
			t.Errorf("%s is not in the schema", r)
		}
		have[r] = true
	}
	for _, want := range []string{
		"GET /version", "GET /cluster/nextid", "GET /cluster/resources", "GET /nodes/{node}/status",
		"GET /nodes/{node}/storage/{storage}/content", "POST /nodes/{node}/storage/{storage}/upload",
		"POST /nodes/{node}/storage/{storage}/oci-registry-pull", "GET /nodes/{node}/lxc", "POST /nodes/{node}/lxc",
		"GET /nodes/{node}/lxc/{vmid}/config", "PUT /nodes/{node}/lxc/{vmid}/config",
		"GET /nodes/{node}/lxc/{vmid}/status/current", "POST /nodes/{node}/lxc/{vmid}/status/start",
		"POST /nodes/{node}/lxc/{vmid}/status/stop", "POST /nodes/{node}/lxc/{vmid}/status/shutdown",
		"POST /nodes/{node}/lxc/{vmid}/status/suspend", "POST /nodes/{node}/lxc/{vmid}/status/resume",
		"DELETE /nodes/{node}/lxc/{vmid}", "GET /nodes/{node}/lxc/{vmid}/snapshot", "POST /nodes/{node}/lxc/{vmid}/snapshot",
		"DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname}", "POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
		"POST /nodes/{node}/lxc/{vmid}/clone", "GET /nodes/{node}/tasks/{upid}/status", "GET /nodes/{node}/tasks/{upid}/log",
	} {
		if !have[want] {
			t.Errorf("%s is not served", want)
		}
	}
	if s.schema.Paths != 435 {
		t.Errorf("schema has %d paths, want the 435 of the vendored apidata.js", s.schema.Paths)
	}
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, AuthFailDelay: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newClient(t, s)
	if v := c.call("GET", "/version", nil).ok(t).(map[string]any); v["version"] != Version {
		t.Fatalf("version %v", v)
	}
	for _, tc := range []struct{ name, header, msg string }{
		{"wrong secret", "PVEAPIToken=" + s.TokenID() + "=nope", "authentication failure\n"},
		{"wrong token", "PVEAPIToken=root@pam!other=" + s.TokenSecret(), "authentication failure\n"},
		{"no header", "", "No ticket\n"},
		{"ticket cookie style", "PVEAuthCookie=x", "No ticket\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.auth = tc.header
			start := time.Now()
			a := c.call("GET", "/version", nil)
			if a.Code != http.StatusUnauthorized || a.Msg != tc.msg {
				t.Fatalf("got %d %q, want 401 %q", a.Code, a.Msg, tc.msg)
			}
			// PVE delays every failed auth; the delay is a lower bound, never an upper one
			if d := time.Since(start); d < 300*time.Millisecond {
				t.Fatalf("401 after %v, before the configured delay", d)
			}
		})
	}
	// the header regex takes the token wherever it stands in the header
	c.auth = "Foo bar PVEAPIToken " + s.TokenID() + "=" + s.TokenSecret()
	c.call("GET", "/version", nil).ok(t)
}

func TestClientFiles(t *testing.T) {
	s := newTestServer(t)
	fi, err := os.Stat(filepath.Join(s.Dir(), "token_secret"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token_secret: %v %v", fi, err)
	}
	b, _ := os.ReadFile(filepath.Join(s.Dir(), "token_secret"))
	if strings.TrimSpace(string(b)) != s.TokenSecret() {
		t.Fatalf("token_secret holds %q", b)
	}
	ca, _ := os.ReadFile(filepath.Join(s.Dir(), "ca.pem"))
	if !bytes.Equal(ca, s.CAPEM()) {
		t.Fatal("ca.pem is not the server's CA")
	}
	var cfg struct {
		Proxmox map[string]string `toml:"proxmox"`
	}
	tb, _ := os.ReadFile(filepath.Join(s.Dir(), "lxcri.toml"))
	if err := toml.Unmarshal(tb, &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"url": "https://" + s.Addr(), "node": "pvesim", "token_id": DefaultTokenID,
		"token_secret_file": filepath.Join(s.Dir(), "token_secret"), "ca_file": filepath.Join(s.Dir(), "ca.pem"),
		"storage": DefaultStorage, "template_storage": DefaultTemplateStorage, "lxc_path": s.LXCPath(),
	}
	for k, v := range want {
		if cfg.Proxmox[k] != v {
			t.Errorf("lxcri.toml %s = %q, want %q", k, cfg.Proxmox[k], v)
		}
	}
	// lxcri's own loader (strict about keys) and the [proxmox] validation take it as it is
	lc := runtime.DefaultConfig()
	if err := lc.MergeFile(filepath.Join(s.Dir(), "lxcri.toml"), true); err != nil {
		t.Fatal(err)
	}
	if err := proxmox.Validate(&lc.Proxmox); err != nil {
		t.Fatal(err)
	}
	if lc.Proxmox.LXCPath != s.LXCPath() {
		t.Errorf("loaded lxc_path %q, want %q", lc.Proxmox.LXCPath, s.LXCPath())
	}
	if strings.Contains(string(tb), s.TokenSecret()) {
		t.Error("lxcri.toml holds the secret")
	}
}

// The quirks of the notes: nextid answers a string, a missing CT is a 500 about its
// config file, an unknown UPID a 400, the reason phrase is the message, unknown paths 501.
func TestQuirks(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	if id := c.call("GET", "/cluster/nextid", nil).ok(t); id != "100" {
		t.Fatalf("nextid = %#v, want the string \"100\"", id)
	}
	if id := c.call("GET", "/cluster/nextid", url.Values{"vmid": {"123"}}).ok(t); id != "123" {
		t.Fatalf("nextid?vmid=123 = %#v", id)
	}
	a := c.call("GET", "/nodes/pvesim/lxc/999/status/current", nil)
	if a.Code != 500 || a.Msg != "Configuration file 'nodes/pvesim/lxc/999.conf' does not exist\n" || a.Status != "Configuration file 'nodes/pvesim/lxc/999.conf' does not exist" {
		t.Fatalf("missing CT: %d %q %q", a.Code, a.Status, a.Msg)
	}
	if _, ok := a.Raw["errors"]; ok {
		t.Fatal("errors present without errors")
	}
	unknown := "UPID:pvesim:0000ABCD:00001234:5F000000:vzstart:100:root@pam!lxcri:"
	a = c.call("GET", "/nodes/pvesim/tasks/"+url.PathEscape(unknown)+"/status", nil)
	if a.Code != 400 || a.Errors["upid"] != "no such task" {
		t.Fatalf("unknown upid: %d %q %v", a.Code, a.Msg, a.Errors)
	}
	a = c.call("GET", "/nodes/pvesim/tasks/nonsense/status", nil)
	if a.Code != 500 || a.Msg != "unable to parse worker upid 'nonsense'\n" {
		t.Fatalf("bad upid: %d %q", a.Code, a.Msg)
	}
	a = c.call("GET", "/nodes/pvesim/nosuch", nil)
	if a.Code != 501 || a.Msg != "Method 'GET /nodes/pvesim/nosuch' not implemented\n" {
		t.Fatalf("unknown path: %d %q", a.Code, a.Msg)
	}
	a = c.call("GET", "/nodes/other/lxc", nil)
	if a.Code != 500 || !strings.HasPrefix(a.Msg, "hostname lookup 'other' failed") {
		t.Fatalf("other node: %d %q", a.Code, a.Msg)
	}
	a = c.call("POST", "/nodes/pvesim/lxc/100/status/start", url.Values{"skiplock": {"1"}})
	if a.Code != 500 {
		t.Fatalf("start of a missing CT: %d %q", a.Code, a.Msg)
	}
}

func uploadTemplate(t *testing.T, c *apiClient, storageID, name string, body []byte) answer {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	w.WriteField("content", "vztmpl")
	fw, _ := w.CreateFormFile("filename", name)
	fw.Write(body)
	w.Close()
	req, err := http.NewRequest("POST", c.base+"/nodes/pvesim/storage/"+storageID+"/upload", &b)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	return c.send(req)
}

// A task runs in the background, can fail, and has a log ending in "TASK ERROR: ...";
// its UPID has PVE's format with the trailing colon.
func TestTaskFailsWithLog(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	a := uploadTemplate(t, c, "local", "debian.tar.gz", []byte("not an OCI archive"))
	c.waitOK(s, a.upid(t))
	a = uploadTemplate(t, c, "local", "x.iso", []byte("x"))
	if a.Code != 400 || a.Errors["filename"] != "wrong file extension" {
		t.Fatalf("upload with a wrong extension: %d %v", a.Code, a.Errors)
	}
	a = uploadTemplate(t, c, "simpool", "y.tar", []byte("x"))
	if a.Code != 500 || a.Msg != "storage 'simpool' does not support 'vztmpl' content\n" {
		t.Fatalf("upload to a storage without vztmpl: %d %q", a.Code, a.Msg)
	}
	list := c.call("GET", "/nodes/pvesim/storage/local/content", url.Values{"content": {"vztmpl"}}).ok(t).([]any)
	if len(list) != 1 || list[0].(map[string]any)["volid"] != "local:vztmpl/debian.tar.gz" {
		t.Fatalf("content: %v", list)
	}

	upid := c.call("POST", "/nodes/pvesim/lxc", url.Values{"vmid": {"100"}, "ostemplate": {"local:vztmpl/debian.tar.gz"}}).upid(t)
	re := regexp.MustCompile(`^UPID:pvesim:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzcreate:100:root@pam!lxcri:$`)
	if !re.MatchString(upid) {
		t.Fatalf("UPID %q", upid)
	}
	st := c.wait(s, upid)
	want := "unable to create CT 100 - pvesim creates CTs from OCI image archives only; 'debian.tar.gz' is not one"
	if st["status"] != "stopped" || st["exitstatus"] != want || st["type"] != "vzcreate" || st["id"] != "100" || st["user"] != DefaultTokenID || st["upid"] != upid {
		t.Fatalf("status %v", st)
	}
	log := c.taskLog(s, upid)
	if !strings.HasSuffix(log, "TASK ERROR: "+want+"\n") {
		t.Fatalf("log:\n%s", log)
	}
	tasks := c.call("GET", "/nodes/pvesim/tasks", url.Values{"errors": {"1"}, "vmid": {"100"}}).ok(t).([]any)
	if len(tasks) != 1 || tasks[0].(map[string]any)["upid"] != upid || tasks[0].(map[string]any)["status"] != want {
		t.Fatalf("failed tasks of CT 100: %v", tasks)
	}
	if tasks := c.call("GET", "/nodes/pvesim/tasks", url.Values{"typefilter": {"imgcopy"}}).ok(t).([]any); len(tasks) != 1 {
		t.Fatalf("imgcopy tasks: %v", tasks)
	}
	// create_vm removes the config of a CT it failed to create
	if a := c.call("GET", "/nodes/pvesim/lxc/100/config", nil); a.Code != 500 {
		t.Fatalf("config after a failed create: %d %v", a.Code, a.Data)
	}
}

func TestFaults(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)

	// an error once, then the request is served
	if err := s.AddFault(Fault{Method: "GET", Path: "^/version$", Kind: FaultError, Status: 503, Message: "service busy", Times: 1}); err != nil {
		t.Fatal(err)
	}
	if a := c.call("GET", "/version", nil); a.Code != 503 || a.Msg != "service busy\n" || a.Status != "service busy" {
		t.Fatalf("error fault: %d %q %q", a.Code, a.Status, a.Msg)
	}
	c.call("GET", "/version", nil).ok(t)

	// latency: served after the delay (a lower bound)
	s.AddFault(Fault{Path: "^/version$", Kind: FaultLatency, Delay: Duration(200 * time.Millisecond), Times: 1})
	start := time.Now()
	c.call("GET", "/version", nil).ok(t)
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("latency fault did not delay")
	}

	// unauthorized, though the token is right
	s.AddFault(Fault{Path: "^/version$", Kind: FaultUnauthorized, Times: 1})
	if a := c.call("GET", "/version", nil); a.Code != 401 {
		t.Fatalf("unauthorized fault: %d", a.Code)
	}

	// a dropped connection: the client sees a transport error, no answer
	s.AddFault(Fault{Path: "^/version$", Kind: FaultDrop, Times: 1})
	req, _ := http.NewRequest("GET", c.base+"/version", nil)
	req.Header.Set("Authorization", c.auth)
	if resp, err := c.hc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("drop fault answered %s", resp.Status)
	}

	// a failed task: the call answers a UPID, the task fails with the message
	a := uploadTemplate(t, c, "local", "t.tar", []byte("x"))
	c.waitOK(s, a.upid(t))
	s.AddFault(Fault{Method: "POST", Path: "^/nodes/[^/]+/lxc$", Kind: FaultTaskFail, Message: "storage went away", Times: 1})
	upid := c.call("POST", "/nodes/pvesim/lxc", url.Values{"vmid": {"101"}, "ostemplate": {"local:vztmpl/t.tar"}}).upid(t)
	if st := c.wait(s, upid); st["exitstatus"] != "storage went away" {
		t.Fatalf("task-fail fault: %v", st)
	}
	// like a failed create in PVE, it leaves no CT behind
	if a := c.call("GET", "/nodes/pvesim/lxc/101/config", nil); a.Code != 500 {
		t.Fatalf("CT of a failed create task: %d %v", a.Code, a.Data)
	}

	// a task that never ends: still running when asked, ended by Close
	s.AddFault(Fault{Path: "^/nodes/[^/]+/storage/[^/]+/upload$", Kind: FaultTaskHang, Times: 1})
	upid = uploadTemplate(t, c, "local", "u.tar", []byte("x")).upid(t)
	st := c.call("GET", "/nodes/pvesim/tasks/"+url.PathEscape(upid)+"/status", nil).ok(t).(map[string]any)
	if st["status"] != "running" {
		t.Fatalf("task-hang fault: %v", st)
	}
	if _, ok := st["exitstatus"]; ok {
		t.Fatalf("running task with an exit status: %v", st)
	}

	if err := s.AddFault(Fault{Kind: "explode"}); err == nil {
		t.Fatal("unknown fault kind accepted")
	}
	if err := s.AddFault(Fault{Kind: FaultError, Status: 404}); err == nil {
		t.Fatal("a 404 error fault accepted")
	}
	// a 403 is PVE's answer to a token that lacks a privilege
	if err := s.AddFault(Fault{Method: "GET", Path: "^/nodes/[^/]+/lxc$", Kind: FaultError, Status: 403, Message: "Permission check failed (/vms, VM.Audit)", Times: 1}); err != nil {
		t.Fatal(err)
	}
	if a := c.call("GET", "/nodes/pvesim/lxc", nil); a.Code != 403 || a.Msg != "Permission check failed (/vms, VM.Audit)\n" {
		t.Fatalf("403 fault: %d %q", a.Code, a.Msg)
	}
}

// Tests run out of process inject faults through /pvesim/faults, with the API token.
func TestAdminFaults(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t, s)
	post := func(body string) answer {
		req, _ := http.NewRequest("POST", "https://"+s.Addr()+"/pvesim/faults", strings.NewReader(body))
		return c.send(req)
	}
	post(`{"method":"GET","path":"^/version$","kind":"error","status":502,"times":2}`).ok(t)
	for i := 0; i < 2; i++ {
		if a := c.call("GET", "/version", nil); a.Code != 502 {
			t.Fatalf("call %d: %d", i, a.Code)
		}
	}
	c.call("GET", "/version", nil).ok(t)
	post(`[{"path":"^/version$","kind":"latency","delay":"10ms"},{"path":"^/cluster","kind":"error"}]`).ok(t)
	req, _ := http.NewRequest("GET", "https://"+s.Addr()+"/pvesim/faults", nil)
	if list := c.send(req).ok(t).([]any); len(list) != 2 {
		t.Fatalf("faults: %v", list)
	}
	req, _ = http.NewRequest("DELETE", "https://"+s.Addr()+"/pvesim/faults", nil)
	c.send(req).ok(t)
	c.call("GET", "/cluster/nextid", nil).ok(t)
	if a := post(`{"kind":"error","status":200}`); a.Code != 400 {
		t.Fatalf("bad fault: %d", a.Code)
	}
	c.auth = ""
	if a := post(`{"kind":"drop"}`); a.Code != 401 {
		t.Fatalf("admin without token: %d", a.Code)
	}
}
