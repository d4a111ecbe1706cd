package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"
)

// ImageAnnotations are the annotations that carry a container's image reference, in the
// order a route's image pattern looks at them: containerd's CRI plugin sets the first on
// containers and the second on pod sandboxes. ctr and nerdctl set none; their containers
// are routed by id or by an annotation (nerdctl copies --label values into annotations).
var ImageAnnotations = []string{"io.kubernetes.cri.image-name", "io.kubernetes.cri.podsandbox.image-name"}

// Route is one [[route]] entry of the host file: when every pattern it has matches a
// container, the container runs on Backend (with the route's tables, when it has any).
// Routes are tried in order; the first that matches wins. A route decides only where
// neither an allowed annotation nor the runtime options chose the backend.
type Route struct {
	// ID is a regular expression (Go RE2 syntax, unanchored) on the container id.
	ID string `toml:"id,omitempty" json:"id,omitempty"`
	// Image is a regular expression on the image reference (ImageAnnotations).
	Image string `toml:"image,omitempty" json:"image,omitempty"`
	// Annotation maps annotation names to regular expressions on their values; a
	// container without the annotation does not match.
	Annotation map[string]string `toml:"annotation,omitempty" json:"annotation,omitempty"`
	// Backend is the backend the matching containers run on.
	Backend string `toml:"backend" json:"backend"`
	// Crun, LXC and ZFS, when given, replace the whole [crun], [lxc] or [zfs] table for the
	// matching containers.
	Crun *CrunConfig `toml:"crun,omitempty" json:"crun,omitempty"`
	LXC  *LXCConfig  `toml:"lxc,omitempty" json:"lxc,omitempty"`
	ZFS  *ZFSConfig  `toml:"zfs,omitempty" json:"zfs,omitempty"`
}

// RouteInput is what routes match against.
type RouteInput struct {
	ID          string
	Annotations map[string]string
}

// image returns the container's image reference from its annotations, or "".
func (in RouteInput) image() string {
	for _, a := range ImageAnnotations {
		if v := in.Annotations[a]; v != "" {
			return v
		}
	}
	return ""
}

// Matches says whether every pattern of r matches in. Patterns are checked by
// validateRoutes, so a pattern that does not compile does not match.
func (r *Route) Matches(in RouteInput) bool {
	match := func(pattern, s string) bool {
		re, err := regexp.Compile(pattern)
		return err == nil && re.MatchString(s)
	}
	if r.ID != "" && !match(r.ID, in.ID) {
		return false
	}
	if r.Image != "" && !match(r.Image, in.image()) {
		return false
	}
	for k, p := range r.Annotation {
		v, ok := in.Annotations[k]
		if !ok || !match(p, v) {
			return false
		}
	}
	return true
}

// Route returns the first route that matches in, or nil.
func (c *Config) Route(in RouteInput) *Route {
	for i := range c.Routes {
		if c.Routes[i].Matches(in) {
			return &c.Routes[i]
		}
	}
	return nil
}

// Apply makes cfg what the route says: its backend and the tables it carries.
func (r *Route) Apply(cfg *Config) {
	cfg.Backend = r.Backend
	if r.Crun != nil {
		cfg.Crun = *r.Crun
	}
	if r.LXC != nil {
		cfg.LXC = *r.LXC
	}
	if r.ZFS != nil {
		cfg.ZFS = *r.ZFS
	}
}

// validateRoutes checks the routes body (from source) defined: each names a valid backend,
// has at least one pattern, and every pattern compiles. An error names the route's line.
func (c *Config) validateRoutes(source string, body []byte) error {
	// only the routes this body set: those of an earlier source were checked with theirs
	var probe struct {
		Routes []map[string]any `toml:"route"`
	}
	if err := toml.Unmarshal(body, &probe); err != nil || probe.Routes == nil {
		return nil
	}
	lines := routeLines(body)
	where := func(i int) string {
		if i < len(lines) {
			return fmt.Sprintf("%s line %d ([[route]] #%d)", source, lines[i], i+1)
		}
		return fmt.Sprintf("%s (route #%d)", source, i+1)
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Backend == "" {
			return fmt.Errorf("route at %s: backend is missing: %w", where(i), errdefs.ErrInvalidArgument)
		}
		if err := ValidateBackend(r.Backend); err != nil {
			return fmt.Errorf("route at %s: %w", where(i), err)
		}
		if r.ID == "" && r.Image == "" && len(r.Annotation) == 0 {
			return fmt.Errorf("route at %s: no pattern (id, image or annotation); set backend for a default instead: %w", where(i), errdefs.ErrInvalidArgument)
		}
		check := func(field, p string) error {
			if _, err := regexp.Compile(p); err != nil {
				return fmt.Errorf("route at %s: %s: invalid regular expression %q: %v: %w", where(i), field, p, err, errdefs.ErrInvalidArgument)
			}
			return nil
		}
		if err := check("id", r.ID); err != nil {
			return err
		}
		if err := check("image", r.Image); err != nil {
			return err
		}
		keys := make([]string, 0, len(r.Annotation))
		for k := range r.Annotation {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "" {
				return fmt.Errorf("route at %s: annotation: empty annotation name: %w", where(i), errdefs.ErrInvalidArgument)
			}
			if err := check("annotation."+k, r.Annotation[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// routeLines returns the line numbers of the [[route]] headers of a TOML body, in order.
// (Routes written as an inline array have none; their errors name the route's position.)
func routeLines(body []byte) []int {
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	inString := false
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		// skip lines inside multi-line strings, where a header is text
		if c := strings.Count(l, `"""`) + strings.Count(l, `'''`); c%2 == 1 {
			inString = !inString
			continue
		}
		if inString {
			continue
		}
		t := strings.TrimSpace(l)
		if i := strings.IndexByte(t, '#'); i >= 0 {
			t = strings.TrimSpace(t[:i])
		}
		if strings.HasPrefix(t, "[[") && strings.HasSuffix(t, "]]") &&
			strings.TrimSpace(t[2:len(t)-2]) == "route" {
			out = append(out, n)
		}
	}
	return out
}
