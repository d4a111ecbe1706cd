package runtime

import (
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
)

const (
	// AnnotationPrefix begins every annotation lxcri reads from a container's spec.
	AnnotationPrefix = "io.lxcri."
	// AllowedAnnotationsSetting is what an operator sets to let containers use lxcri's
	// annotations; error messages name it.
	AllowedAnnotationsSetting = "allowed_annotations in " + DefaultConfigPath
)

// KnownAnnotations are the io.lxcri.* annotations lxcri understands.
var KnownAnnotations = []string{BackendAnnotation}

// Annotations come from whoever writes the container's spec: through CRI, any pod author
// whose annotations containerd forwards. The configuration comes from the operator: the
// host file and the runtime options of containerd's config. So an annotation takes effect
// only where the configuration allows it (allowed_annotations; default: none).

// AllowsAnnotation tells whether allowed_annotations admits annotation name: an entry is
// either a name or a prefix ending in "*" ("io.lxcri.*").
func (c *Config) AllowsAnnotation(name string) bool {
	for _, a := range c.AllowedAnnotations {
		if p, ok := strings.CutSuffix(a, "*"); ok {
			if strings.HasPrefix(name, p) {
				return true
			}
		} else if a == name {
			return true
		}
	}
	return false
}

// CheckAnnotations refuses an io.lxcri.* annotation the configuration does not allow, or
// one lxcri does not know, as InvalidArgument naming it. Other annotations are not
// lxcri's to judge.
func (c *Config) CheckAnnotations(annotations map[string]string) error {
	keys := make([]string, 0, len(annotations))
	for k := range annotations {
		if strings.HasPrefix(k, AnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !c.AllowsAnnotation(k) {
			return fmt.Errorf("annotation %q is not allowed: the operator allows it with %s (or in the runtime options): %w",
				k, AllowedAnnotationsSetting, errdefs.ErrInvalidArgument)
		}
		known := false
		for _, a := range KnownAnnotations {
			known = known || a == k
		}
		if !known {
			return fmt.Errorf("unknown annotation %q: lxcri knows %s: %w", k, strings.Join(KnownAnnotations, ", "), errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// validateAllowedAnnotations checks the entries of allowed_annotations read from source.
func (c *Config) validateAllowedAnnotations(source string) error {
	for _, a := range c.AllowedAnnotations {
		name, _ := strings.CutSuffix(a, "*")
		ok := a != ""
		for _, r := range name {
			ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/", r))
		}
		if !ok {
			return fmt.Errorf("allowed_annotations in %s: entry %q is neither an annotation name nor a prefix ending in * (e.g. %q): %w",
				source, a, AnnotationPrefix+"*", errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
