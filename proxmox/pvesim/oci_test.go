package pvesim

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

type tarEntry struct {
	name, link string
	typ        byte
	body       string
	mode       int64
	uid        int
}

func tarOf(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Uid: e.uid, Gid: e.uid}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return b.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ociArchive writes an OCI archive of gzip layers and an image config to a file.
func ociArchive(t *testing.T, dir string, config map[string]any, layers ...[]byte) string {
	t.Helper()
	blobs := map[string][]byte{}
	var descs []map[string]any
	for _, l := range layers {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(l)
		zw.Close()
		blobs[sha(gz.Bytes())] = gz.Bytes()
		descs = append(descs, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(gz.Bytes()), "size": gz.Len()})
	}
	cb, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": config})
	blobs[sha(cb)] = cb
	mb, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtOCIManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cb), "size": len(cb)}, "layers": descs})
	blobs[sha(mb)] = mb
	ib, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{"mediaType": mtOCIManifest, "digest": sha(mb), "size": len(mb)}}})
	entries := []tarEntry{{name: "oci-layout", typ: tar.TypeReg, body: `{"imageLayoutVersion":"1.0.0"}`}, {name: "index.json", typ: tar.TypeReg, body: string(ib)}}
	for d, b := range blobs {
		entries = append(entries, tarEntry{name: "blobs/sha256/" + strings.TrimPrefix(d, "sha256:"), typ: tar.TypeReg, body: string(b)})
	}
	p := filepath.Join(dir, "image.tar")
	if err := os.WriteFile(p, tarOf(t, entries), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Layers are squashed in order with their whiteouts, owners shifted for unprivileged CTs.
func TestSquashLayers(t *testing.T) {
	dir := t.TempDir()
	l1 := tarOf(t, []tarEntry{
		{name: "a/", typ: tar.TypeDir, mode: 0o755},
		{name: "a/f", typ: tar.TypeReg, body: "f"},
		{name: "b", typ: tar.TypeReg, body: "b"},
		{name: "c", typ: tar.TypeReg, body: "old"},
		{name: "bin/tool", typ: tar.TypeReg, body: "#!", mode: 0o4755, uid: 7},
		{name: "lnk", typ: tar.TypeSymlink, link: "/bin/tool"},
		{name: "hard", typ: tar.TypeLink, link: "c"},
	})
	l2 := tarOf(t, []tarEntry{
		{name: ".wh.b", typ: tar.TypeReg},
		{name: "a/.wh..wh..opq", typ: tar.TypeReg},
		{name: "a/g", typ: tar.TypeReg, body: "g"},
		{name: "c", typ: tar.TypeReg, body: "new"},
	})
	archive := ociArchive(t, dir, map[string]any{"Entrypoint": []string{"/bin/tool"}, "Cmd": []string{"it's"}, "Env": []string{"A=1"}, "WorkingDir": "/a", "StopSignal": "SIGINT"}, l1, l2)
	if ok, err := isOCIArchive(archive); !ok || err != nil {
		t.Fatalf("isOCIArchive: %v %v", ok, err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	os.Mkdir(rootfs, 0o755)
	cfg, err := squashImage(context.Background(), archive, dir, rootfs, unprivShift, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"b", "a/f"} {
		if _, err := os.Lstat(filepath.Join(rootfs, gone)); !os.IsNotExist(err) {
			t.Errorf("%s survived its whiteout", gone)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "c")); string(b) != "new" {
		t.Errorf("c = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "hard")); string(b) != "old" {
		t.Errorf("hard link = %q", b)
	}
	fi, err := os.Stat(filepath.Join(rootfs, "bin/tool"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("setuid lost: %v %v", fi, err)
	}
	if st := fileOwner(t, filepath.Join(rootfs, "bin/tool")); st != unprivShift+7 {
		t.Errorf("owner %d, want %d", st, unprivShift+7)
	}
	if l, _ := os.Readlink(filepath.Join(rootfs, "lnk")); l != "/bin/tool" {
		t.Errorf("symlink %q", l)
	}
	conf := map[string]string{"net0": "name=eth0"}
	raw := applyImageConfig(conf, cfg, rootfs, &task{})
	if conf["entrypoint"] != `/bin/tool 'it'\''s'` || conf["env"] != "A=1" || conf["cmode"] != "console" || conf["net0"] != "name=eth0,host-managed=1" {
		t.Errorf("config %v", conf)
	}
	if len(raw) != 2 || raw[0] != [2]string{"lxc.init.cwd", "/a"} || raw[1] != [2]string{"lxc.signal.halt", "SIGINT"} {
		t.Errorf("raw %v", raw)
	}
}

// A layer cannot write outside the rootfs, whatever its names and links say.
func TestSquashConfined(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tarEntry
	}{
		{"dotdot", []tarEntry{{name: "../../escape", typ: tar.TypeReg, body: "x"}}},
		{"through relative symlink", []tarEntry{{name: "up", typ: tar.TypeSymlink, link: "../.."}, {name: "up/escape", typ: tar.TypeReg, body: "x"}}},
		{"through absolute symlink", []tarEntry{{name: "abs", typ: tar.TypeSymlink, link: "OUTSIDE"}, {name: "abs/escape", typ: tar.TypeReg, body: "x"}}},
		{"hard link out", []tarEntry{{name: "h", typ: tar.TypeLink, link: "../../outside/secret"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			outside := filepath.Join(dir, "outside")
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
			for i := range tc.entries {
				tc.entries[i].link = strings.ReplaceAll(tc.entries[i].link, "OUTSIDE", outside)
			}
			base := filepath.Join(dir, "x", "y")
			os.MkdirAll(base, 0o755)
			archive := ociArchive(t, dir, map[string]any{}, tarOf(t, tc.entries))
			rootfs := filepath.Join(base, "rootfs")
			os.Mkdir(rootfs, 0o755)
			squashImage(context.Background(), archive, dir, rootfs, 0, t.Logf) // may fail; must not escape
			for _, p := range []string{filepath.Join(dir, "escape"), filepath.Join(dir, "x", "escape"), filepath.Join(base, "escape"), filepath.Join(outside, "escape")} {
				if _, err := os.Lstat(p); err == nil {
					t.Fatalf("%s written outside the rootfs", p)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "s" {
				t.Fatal("file outside the rootfs changed")
			}
			if fi, err := os.Lstat(filepath.Join(rootfs, "h")); err == nil && fi.Mode().IsRegular() {
				t.Fatal("hard link to a file outside the rootfs")
			}
		})
	}
}

// registry serves an OCI archive's image over the distribution API, plain HTTP on
// loopback, as a test registry does; with index set, the tag resolves to an image index.
func registry(t *testing.T, archive, repo, tag string, index bool) *httptest.Server {
	t.Helper()
	dir := t.TempDir()
	if err := unpackArchive(archive, dir); err != nil {
		t.Fatal(err)
	}
	ib, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	var idx ociIndex
	json.Unmarshal(ib, &idx)
	manifest := idx.Manifests[0].Digest
	var indexBody []byte
	if index {
		indexBody, _ = json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtOCIIndex, "manifests": []any{
			map[string]any{"mediaType": mtOCIManifest, "digest": "sha256:" + strings.Repeat("0", 64), "size": 1, "platform": map[string]string{"architecture": "s390x", "os": "linux"}},
			map[string]any{"mediaType": mtOCIManifest, "digest": manifest, "size": 1, "platform": map[string]string{"architecture": "amd64", "os": "linux"}},
		}})
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefix := "/v2/" + repo + "/"
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		kind, ref, _ := strings.Cut(rest, "/")
		if kind == "manifests" && ref == tag {
			if index {
				w.Header().Set("Content-Type", mtOCIIndex)
				w.Write(indexBody)
				return
			}
			ref = manifest
		}
		p, err := blobPath(dir, ref)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		b, err := os.ReadFile(p)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if kind == "manifests" {
			w.Header().Set("Content-Type", mtOCIManifest)
		}
		w.Write(b)
	}))
}

// oci-registry-pull stores <name>_<tag>.tar in vztmpl storage, from which a CT is
// created; an existing file is not overwritten.
func TestOCIRegistryPull(t *testing.T) {
	archive := busyboxArchive(t, "docker.io/library/app:1", appCmd)
	for _, index := range []bool{false, true} {
		t.Run(map[bool]string{false: "manifest", true: "index"}[index], func(t *testing.T) {
			reg := registry(t, archive, "lxcri/app", "v1.2", index)
			defer reg.Close()
			s := newTestServer(t)
			c := newClient(t, s)
			host := strings.TrimPrefix(reg.URL, "http://")
			ref := host + "/lxcri/app:v1.2"
			c.waitOK(s, c.call("POST", "/nodes/pvesim/storage/local/oci-registry-pull", url.Values{"reference": {ref}}).upid(t))
			list := c.call("GET", "/nodes/pvesim/storage/local/content", nil).ok(t).([]any)
			if len(list) != 1 || list[0].(map[string]any)["volid"] != "local:vztmpl/app_v1.2.tar" || list[0].(map[string]any)["format"] != "tar" {
				t.Fatalf("content: %v", list)
			}
			a := c.call("POST", "/nodes/pvesim/storage/local/oci-registry-pull", url.Values{"reference": {ref}})
			if a.Code != 500 || a.Msg != "refusing to override existing file 'app_v1.2.tar'\n" {
				t.Fatalf("second pull: %d %q", a.Code, a.Msg)
			}
			st := c.wait(s, c.call("POST", "/nodes/pvesim/storage/local/oci-registry-pull", url.Values{"reference": {host + "/lxcri/none:1"}}).upid(t))
			if !strings.Contains(st["exitstatus"].(string), "404") {
				t.Fatalf("pull of a missing image: %v", st)
			}
			c.waitOK(s, c.call("POST", "/nodes/pvesim/lxc", url.Values{"vmid": {"100"}, "ostemplate": {"local:vztmpl/app_v1.2.tar"}, "rootfs": {"simpool:1"}}).upid(t))
			conf := configOf(t, c, 100)
			if !strings.HasPrefix(conf["entrypoint"].(string), "/bin/sh -c ") {
				t.Fatalf("CT from the pulled image: %v", conf)
			}
		})
	}
}

func fileOwner(t *testing.T, p string) int {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// The entrypoint PVE writes (cmd2string) is split back into words as LXC 6 splits
// lxc.init.cmd: quoted words whole, no escapes.
func TestSplitQuoted(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"/bin/sh", "-c", `trap "exit 0" TERM; sleep 1`}, []string{"/bin/sh", "-c", `trap "exit 0" TERM; sleep 1`}},
		{[]string{"/app", "--name=a b", ""}, []string{"/app", "--name=a b", ""}},
		{[]string{"/app", "x"}, []string{"/app", "x"}},
		// LXC knows no escaped quote: a single quote in an argument breaks it, in PVE too
		{[]string{"/bin/echo", "it's"}, []string{"/bin/echo", "it", `\''s'`}},
	} {
		got := splitQuoted(cmd2string(tc.args))
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("%q -> %q -> %q, want %q", tc.args, cmd2string(tc.args), got, tc.want)
		}
	}
}
