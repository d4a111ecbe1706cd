package runtime

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestRouteValidation: a route must name a valid backend and have at least one pattern,
// and every pattern must compile; an invalid route is refused naming its file and line.
func TestRouteValidation(t *testing.T) {
	for _, tc := range []struct {
		name, body, err string
	}{
		{"valid", "backend = \"lxc\"\n\n[[route]]\nid = \"^db-\"\nbackend = \"crun\"\n", ""},
		{"all matchers and tables", `
[[route]]
id = "^web"
image = "nginx"
annotation = { "io.kubernetes.cri.sandbox-namespace" = "^prod$" }
backend = "crun"
[route.crun]
binary = "runc"
[route.zfs]
dataset = "tank/fast"
`, ""},
		{"no backend", "[[route]]\nid = \"x\"\n", "route at f.toml line 1 ([[route]] #1): backend is missing"},
		{"unknown backend", "\n\n[[route]] # second\nid = \"x\"\nbackend = \"kvm\"\n", `route at f.toml line 3 ([[route]] #1): unknown backend "kvm": valid backends are crun, lxc, proxmox-lxc, proxmox-vm`},
		{"no pattern", "[[route]]\nid = \"ok\"\nbackend = \"lxc\"\n\n[[route]]\nbackend = \"crun\"\n", "route at f.toml line 5 ([[route]] #2): no pattern"},
		{"bad id", "[[route]]\nid = \"(\"\nbackend = \"lxc\"\n", "route at f.toml line 1 ([[route]] #1): id: invalid regular expression \"(\""},
		{"bad image", "[[route]]\nimage = \"[z-a]\"\nbackend = \"lxc\"\n", "image: invalid regular expression"},
		{"bad annotation", "[[route]]\nannotation = { \"a\" = \"*\" }\nbackend = \"lxc\"\n", "annotation.a: invalid regular expression"},
		{"empty annotation name", "[[route]]\nannotation = { \"\" = \"x\" }\nbackend = \"lxc\"\n", "empty annotation name"},
		{"inline array", "route = [{ id = \"(\", backend = \"lxc\" }]\n", "route at f.toml (route #1): id: invalid regular expression"},
		{"unknown key in a route", "[[route]]\nid = \"x\"\nbackend = \"lxc\"\nimages = \"y\"\n", "route.images (line 4)"},
		{"multi-line string before", "[lxc]\nlog_level = \"\"\"\n[[route]]\n\"\"\"\n[[route]]\nid = \"(\"\nbackend = \"lxc\"\n", "f.toml line 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			err := c.Merge("f.toml", []byte(tc.body))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want InvalidArgument saying %q", err, tc.err)
			}
		})
	}
}

// TestRouteMatch: routes are tried in order, the first whose patterns all match wins; an
// image pattern looks at the CRI image annotations, an annotation pattern needs the
// annotation; a route's tables replace the configuration's.
func TestRouteMatch(t *testing.T) {
	c := DefaultConfig()
	err := c.Merge("f.toml", []byte(`
[crun]
binary = "crun"
[[route]]
id = "^db-"
annotation = { tier = "^(gold|silver)$" }
backend = "proxmox-lxc"
[[route]]
image = "^docker.io/library/nginx:"
backend = "crun"
[route.crun]
binary = "runc"
[[route]]
id = "^db-"
backend = "crun"
`))
	if err != nil {
		t.Fatal(err)
	}
	img := func(ref string) map[string]string { return map[string]string{"io.kubernetes.cri.image-name": ref} }
	for _, tc := range []struct {
		name    string
		in      RouteInput
		backend string // "" for no route
		binary  string
	}{
		{"id and annotation", RouteInput{ID: "db-1", Annotations: map[string]string{"tier": "gold"}}, "proxmox-lxc", "crun"},
		{"annotation does not match: next route", RouteInput{ID: "db-1", Annotations: map[string]string{"tier": "bronze"}}, "crun", "crun"},
		{"annotation missing", RouteInput{ID: "db-1"}, "crun", "crun"},
		{"image of a container", RouteInput{ID: "web", Annotations: img("docker.io/library/nginx:1.27")}, "crun", "runc"},
		{"image of a sandbox", RouteInput{ID: "web", Annotations: map[string]string{"io.kubernetes.cri.podsandbox.image-name": "docker.io/library/nginx:x"}}, "crun", "runc"},
		{"other image", RouteInput{ID: "web", Annotations: img("docker.io/library/redis:7")}, "", "crun"},
		{"no match", RouteInput{ID: "x-db-1"}, "", "crun"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := c.Clone()
			r := cfg.Route(tc.in)
			switch {
			case r == nil && tc.backend != "":
				t.Fatalf("no route, want %s", tc.backend)
			case r != nil && tc.backend == "":
				t.Fatalf("route to %s, want none", r.Backend)
			case r != nil:
				r.Apply(cfg)
			}
			if tc.backend != "" && cfg.Backend != tc.backend {
				t.Errorf("backend %s, want %s", cfg.Backend, tc.backend)
			}
			if cfg.Crun.Binary != tc.binary {
				t.Errorf("crun binary %s, want %s", cfg.Crun.Binary, tc.binary)
			}
		})
	}
	if c.Crun.Binary != "crun" {
		t.Errorf("applying a route to a clone changed the original: %s", c.Crun.Binary)
	}
}
