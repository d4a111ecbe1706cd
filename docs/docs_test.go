// Package docs holds lxcri's documentation; its test keeps the documentation and the
// examples in contrib/ in step with the code.
package docs

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/lxcri/lxcri/runtime"
)

const repo = ".."

// markdownFiles are the documents whose examples are checked.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(repo, "README.md")}
	err := filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") && (strings.HasPrefix(p, filepath.Join(repo, "docs")) || strings.HasPrefix(p, filepath.Join(repo, "contrib"))) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

var fence = regexp.MustCompile("(?ms)^```(\\w*)\\n(.*?)^```")

type block struct {
	file, lang, body string
	line             int
}

func blocks(t *testing.T, lang string) []block {
	t.Helper()
	var out []block
	for _, f := range markdownFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range fence.FindAllSubmatchIndex(b, -1) {
			if string(b[m[2]:m[3]]) != lang {
				continue
			}
			out = append(out, block{file: f, lang: lang, body: string(b[m[4]:m[5]]), line: 1 + strings.Count(string(b[:m[0]]), "\n")})
		}
	}
	return out
}

// lxcriOptions returns the lxcri configurations a containerd config holds: the options
// tables of its lxcri runtime handlers (without ConfigPath, containerd sends the table as
// config_body).
func lxcriOptions(t *testing.T, name, body string) map[string][]byte {
	t.Helper()
	var ctd map[string]any
	if err := toml.Unmarshal([]byte(body), &ctd); err != nil {
		t.Fatalf("%s: containerd configuration: %v", name, err)
	}
	out := map[string][]byte{}
	plugins, _ := ctd["plugins"].(map[string]any)
	cri, _ := plugins["io.containerd.cri.v1.runtime"].(map[string]any)
	c, _ := cri["containerd"].(map[string]any)
	rts, _ := c["runtimes"].(map[string]any)
	for h, v := range rts {
		rt, _ := v.(map[string]any)
		if rt["runtime_type"] != "io.containerd.lxcri.v2" {
			continue
		}
		opts, _ := rt["options"].(map[string]any)
		if _, ok := opts["ConfigPath"]; ok || opts == nil {
			out[h] = nil
			continue
		}
		b, err := toml.Marshal(opts)
		if err != nil {
			t.Fatal(err)
		}
		out[h] = b
	}
	if len(out) == 0 {
		t.Fatalf("%s: no lxcri runtime handler", name)
	}
	return out
}

// TestTOMLExamples: every toml block of the documentation is an lxcri configuration that
// loads, or a containerd configuration whose lxcri handlers' options load.
func TestTOMLExamples(t *testing.T) {
	bs := blocks(t, "toml")
	if len(bs) < 5 {
		t.Fatalf("found only %d toml examples", len(bs))
	}
	for _, b := range bs {
		name := b.file + ":" + strconv.Itoa(b.line)
		if strings.Contains(b.body, "[plugins.") {
			for h, opts := range lxcriOptions(t, name, b.body) {
				if err := runtime.DefaultConfig().Merge(name+" handler "+h, opts); err != nil {
					t.Errorf("%v", err)
				}
			}
			continue
		}
		if err := runtime.DefaultConfig().Merge(name, []byte(b.body)); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// configKeys lists the keys of runtime.Config: "backend", "crun.binary", "route.id"...;
// tables inside a route are listed as the table ("route.crun").
func configKeys(t reflect.Type, prefix string, depth int) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if key == "" || key == "-" {
			continue
		}
		full := prefix + key
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && depth == 0 {
			out = append(out, configKeys(ft, full+".", depth+1)...)
			continue
		}
		out = append(out, full)
	}
	return out
}

// TestConfigKeysDocumented: every key of runtime.Config is in the configuration reference.
func TestConfigKeysDocumented(t *testing.T) {
	ref, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := configKeys(reflect.TypeOf(runtime.Config{}), "", 0)
	if len(keys) < 15 {
		t.Fatalf("only %d keys found: %v", len(keys), keys)
	}
	// the first cell of a table row names the keys it documents
	var firsts []string
	for _, l := range strings.Split(string(ref), "\n") {
		if cells := strings.Split(l, "|"); len(cells) > 2 && strings.HasPrefix(l, "|") {
			firsts = append(firsts, cells[1])
		}
	}
	for _, k := range keys {
		found := false
		for _, f := range firsts {
			found = found || strings.Contains(f, "`"+k+"`")
		}
		if !found {
			t.Errorf("docs/configuration.md does not document %s (in the first cell of a table row)", k)
		}
	}
}

// TestRouteErrorDocumented: the refused route the reference shows is the code's message.
func TestRouteErrorDocumented(t *testing.T) {
	ref, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	body.WriteString("[[route]]\nid = \"a\"\nbackend = \"lxc\"\n")
	for strings.Count(body.String(), "\n") < 11 { // the second route's header on line 12
		body.WriteString("\n")
	}
	body.WriteString("[[route]]\nid = \"(\"\nbackend = \"lxc\"\n")
	err = runtime.DefaultConfig().Merge(runtime.DefaultConfigPath, []byte(body.String()))
	if err == nil {
		t.Fatal("the invalid route was accepted")
	}
	if !strings.Contains(string(ref), err.Error()) {
		t.Errorf("docs/configuration.md does not show the error the code gives:\n%s", err)
	}
}

// uncomment turns the commented example lines of contrib/config.toml ("# key = value",
// "# [table]", "# [[route]]") into TOML.
var exampleLine = regexp.MustCompile(`^# ?(\[\[?[a-z.]+\]\]?|[a-z_]+ = .*)$`)

func uncomment(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if m := exampleLine.FindStringSubmatch(l); m != nil {
			lines[i] = m[1]
		}
	}
	return strings.Join(lines, "\n")
}

// TestContribConfig: contrib/config.toml loads as it is (all defaults) and with every
// example line uncommented.
func TestContribConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repo, "contrib", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	c := runtime.DefaultConfig()
	if err := c.Merge("contrib/config.toml", b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, runtime.DefaultConfig()) {
		t.Errorf("contrib/config.toml as shipped changes the defaults: %+v", c)
	}
	c = runtime.DefaultConfig()
	if err := c.Merge("contrib/config.toml, uncommented", []byte(uncomment(string(b)))); err != nil {
		t.Fatal(err)
	}
	if c.ZFS.Dataset == "" || len(c.Routes) != 2 || c.Routes[0].ZFS == nil || c.Routes[1].Crun == nil || len(c.AllowedAnnotations) != 1 {
		t.Errorf("uncommented examples gave %+v", c)
	}
}

// TestContribContainerd: each handler of contrib/containerd/ names lxcri's runtime type and
// has options that load as lxcri configuration, choosing its backend.
func TestContribContainerd(t *testing.T) {
	want := map[string]string{"lxcri": "", "lxcri-crun": "crun", "lxcri-proxmox-lxc": "proxmox-lxc", "lxcri-proxmox-vm": "proxmox-vm"}
	for h, backend := range want {
		f := filepath.Join(repo, "contrib", "containerd", h+".toml")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		opts := lxcriOptions(t, f, string(b))
		o, ok := opts[h]
		if !ok {
			t.Errorf("%s: no handler %q", f, h)
			continue
		}
		c := runtime.DefaultConfig()
		c.Backend = ""
		if err := c.Merge(f, o); err != nil {
			t.Errorf("%v", err)
		}
		if c.Backend != backend {
			t.Errorf("%s: handler %s chooses backend %q, want %q", f, h, c.Backend, backend)
		}
		k8s := filepath.Join(repo, "contrib", "kubernetes", h+".yaml")
		if y, err := os.ReadFile(k8s); err != nil || !strings.Contains(string(y), "\nhandler: "+h+"\n") || !strings.Contains(string(y), "kind: RuntimeClass") {
			t.Errorf("%s: no RuntimeClass for handler %s (%v)", k8s, h, err)
		}
	}
}

// TestTroubleshootingMessages: the configuration errors troubleshooting.md quotes are the
// ones the code gives (up to the wrapped error code).
func TestTroubleshootingMessages(t *testing.T) {
	doc, err := os.ReadFile("troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		"\n\n\n[crun]\nbianry = \"runc\"\n",
		"backend = \"lxd\"\n",
		"allowed_annotations = [\"io lxcri\"]\n",
	} {
		c := runtime.DefaultConfig()
		err := c.Merge(runtime.DefaultConfigPath, []byte(body))
		if err == nil {
			// a backend name is checked when a container asks for it
			err = runtime.ValidateBackend(c.Backend)
		}
		if err == nil {
			t.Fatalf("%q was accepted", body)
		}
		msg := strings.TrimSuffix(err.Error(), ": invalid argument")
		// the document abridges variable parts with "...": compare up to the first one
		if i := strings.Index(msg, `"io lxcri"`); i >= 0 {
			msg = msg[:i]
		}
		if !strings.Contains(string(doc), msg) {
			t.Errorf("troubleshooting.md does not quote %q", msg)
		}
	}
}
