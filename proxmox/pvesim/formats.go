package pvesim

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
)

// formatFunc checks a value against a named PVE format and returns the message PVE dies
// with (without its trailing newline, which the caller adds).
type formatFunc func(v string) error

var (
	reNode      = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`)
	reVMID      = regexp.MustCompile(`^[1-9][0-9]{2,8}$`)
	reConfigID  = regexp.MustCompile(`^(?i:[a-z][a-z0-9_-]+)$`)
	reID        = regexp.MustCompile(`^(?i:[a-z][a-z0-9\-\_\.]*[a-z0-9])$`)
	reDNSName   = regexp.MustCompile(`^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`)
	reTag       = regexp.MustCompile(`^(?i:[a-z0-9_][a-z0-9_\-\+\.]*)$`)
	reVolumeID  = regexp.MustCompile(`^(?i:[a-z][a-z0-9\-\_\.]*[a-z0-9]):(.+)$`)
	reSize      = regexp.MustCompile(`^(\d+(\.\d+)?)([KMGT](?:iB)?)?$`)
	reMAC       = regexp.MustCompile(`^(?i:[a-f0-9][02468ace](?::[a-f0-9]{2}){5})$`)
	rePoolID    = regexp.MustCompile(`^(?i:[a-z0-9_\-]{1,40})$`)
	reMPBad     = regexp.MustCompile(`(?:^|/)\.\.?(?:/|$)`)
	reTaskState = regexp.MustCompile(`^(?i:ok|error|warning|unknown)$`)
)

func idCheck(kind string) formatFunc {
	return func(v string) error {
		if len(v) < 2 {
			return fmt.Errorf("%s ID '%s' cannot be shorter than 2 characters", kind, v)
		}
		if !reID.MatchString(v) {
			return fmt.Errorf("%s ID '%s' contains illegal characters", kind, v)
		}
		return nil
	}
}

func reCheck(re *regexp.Regexp, msg string) formatFunc {
	return func(v string) error {
		if !re.MatchString(v) {
			return errors.New(strings.ReplaceAll(msg, "%s", v))
		}
		return nil
	}
}

// formats are the named formats of pve-common, pve-storage and pve-container that the
// served endpoints use. A format not named here is not checked (README.md lists them).
var formats = map[string]formatFunc{
	"pve-node":             reCheck(reNode, "value does not look like a valid node name"),
	"pve-vmid":             reCheck(reVMID, "value does not look like a valid VM ID"),
	"pve-configid":         reCheck(reConfigID, "invalid configuration ID '%s'"),
	"pve-storage-id":       idCheck("storage"),
	"dns-name":             reCheck(reDNSName, "value does not look like a valid DNS name"),
	"pve-tag":              reCheck(reTag, "invalid characters in tag"),
	"pve-volume-id":        reCheck(reVolumeID, "unable to parse volume ID '%s'"),
	"pve-poolid":           reCheck(rePoolID, "invalid pool ID '%s'"),
	"mac-addr":             reCheck(reMAC, "value does not look like a valid unicast MAC address"),
	"pve-task-status-type": reCheck(reTaskState, "invalid status '%s'"),
	"disk-size": func(v string) error {
		if !reSize.MatchString(v) {
			return fmt.Errorf("value does not look like a valid disk size: %s", v)
		}
		return nil
	},
	"ipv4": func(v string) error {
		if ip := net.ParseIP(v); ip == nil || ip.To4() == nil || strings.Contains(v, ":") {
			return fmt.Errorf("value does not look like a valid IPv4 address")
		}
		return nil
	},
	"ipv6": func(v string) error {
		if ip := net.ParseIP(v); ip == nil || !strings.Contains(v, ":") {
			return fmt.Errorf("value does not look like a valid IPv6 address")
		}
		return nil
	},
	"ip": func(v string) error {
		if net.ParseIP(v) == nil {
			return fmt.Errorf("value does not look like a valid IP address")
		}
		return nil
	},
	"pve-storage-content": func(v string) error {
		switch v {
		case "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import":
			return nil
		}
		return fmt.Errorf("invalid content type '%s'", v)
	},
	"pve-lxc-mp-string": func(v string) error {
		if reMPBad.MatchString(v) {
			return fmt.Errorf("%s contains illegal character sequences", v)
		}
		return nil
	},
	"pve-ipv4-config": func(v string) error {
		if v == "dhcp" || v == "manual" {
			return nil
		}
		if _, _, err := net.ParseCIDR(v); err != nil || strings.Contains(v, ":") {
			return fmt.Errorf("invalid IPv4 network configuration '%s'", v)
		}
		return nil
	},
	"pve-ipv6-config": func(v string) error {
		if v == "dhcp" || v == "manual" || v == "auto" {
			return nil
		}
		if _, _, err := net.ParseCIDR(v); err != nil || !strings.Contains(v, ":") {
			return fmt.Errorf("invalid IPv6 network configuration '%s'", v)
		}
		return nil
	},
}

// UncheckedFormats returns the named formats in the schema of the served endpoints that
// the emulator accepts without checking.
func (s *Schema) UncheckedFormats(methods []*Method) []string {
	seen := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if f, ok := x["format"].(string); ok {
				name, _ := splitFormat(f)
				if _, known := formats[name]; !known && name != "regex" {
					seen[f] = true
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	for _, m := range methods {
		walk(m.Parameters)
	}
	return sortedKeys(seen)
}

func splitFormat(f string) (name, kind string) {
	switch {
	case strings.HasSuffix(f, "-list"):
		return strings.TrimSuffix(f, "-list"), "list"
	case strings.HasSuffix(f, "-opt"):
		return strings.TrimSuffix(f, "-opt"), "opt"
	}
	return f, ""
}

// splitList is PVE::ParseUtils::split_list.
func splitList(v string) []string {
	if strings.Contains(v, "\x00") {
		return strings.Split(v, "\x00")
	}
	v = strings.NewReplacer(",", " ", ";", " ").Replace(v)
	return strings.Fields(v)
}

// checkFormat is check_format: a property-string format (an object) or a named format,
// with PVE's -list and -opt suffixes.
func (s *Schema) checkFormat(format any, value, path string) error {
	if obj, ok := format.(map[string]any); ok {
		return s.parsePropertyString(obj, value, path)
	}
	f, _ := format.(string)
	if f == "" || f == "regex" {
		return nil
	}
	name, kind := splitFormat(f)
	if _, ok := formats[name]; !ok {
		if _, ok := formats[f]; ok {
			name, kind = f, ""
		}
	}
	fn, ok := formats[name]
	if !ok {
		return nil
	}
	switch kind {
	case "list":
		for _, v := range splitList(value) {
			if err := fn(v); err != nil {
				return err
			}
		}
		return nil
	case "opt":
		if value == "" {
			return nil
		}
	}
	return fn(value)
}

// parseBool is PVE::JSONSchema::parse_boolean, which property strings use.
func parseBool(v string) (string, bool) {
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return "1", true
	case "0", "off", "no", "false":
		return "0", true
	}
	return v, false
}

// formatError is PVE's "format error" exception: its text lists the per-key errors.
type formatError map[string]string

func (e formatError) Error() string {
	var b strings.Builder
	b.WriteString("format error\n")
	for _, k := range sortedKeys(e) {
		fmt.Fprintf(&b, "%s: %s\n", k, e[k])
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// ParsePropertyString splits a property string ("local:8,size=8G") by a format object
// from the schema, without checking the values. It is what the handlers use to read
// rootfs, net[n] and features after the request passed Check.
func ParsePropertyString(format map[string]any, data string) (map[string]string, error) {
	res := map[string]string{}
	var defaultKey string
	for _, part := range strings.Split(data, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		if k, v, ok := strings.Cut(part, "="); ok {
			if k == "" || v == "" {
				return nil, errors.New("missing key in comma-separated list property")
			}
			sch, _ := format[k].(map[string]any)
			if alias, ok := sch["alias"].(string); ok {
				k = alias
				sch, _ = format[k].(map[string]any)
			}
			if _, dup := res[k]; dup {
				return nil, fmt.Errorf("duplicate key in comma-separated list property: %s", k)
			}
			if sch == nil {
				return nil, fmt.Errorf("invalid key in comma-separated list property: %s", k)
			}
			if sch["type"] == "boolean" {
				v, _ = parseBool(v)
			}
			res[k] = v
			continue
		}
		if defaultKey != "" {
			return nil, fmt.Errorf("duplicate key in comma-separated list property: %s", defaultKey)
		}
		for _, k := range sortedKeys(format) {
			sch, _ := format[k].(map[string]any)
			if !isTrue(sch["default_key"]) {
				continue
			}
			defaultKey = k
			if _, dup := res[k]; dup {
				return nil, fmt.Errorf("duplicate key in comma-separated list property: %s", k)
			}
			if sch["type"] == "boolean" {
				part, _ = parseBool(part)
			}
			res[k] = part
			break
		}
		if defaultKey == "" {
			return nil, errors.New("value without key, but schema does not define a default key")
		}
	}
	return res, nil
}

func (s *Schema) parsePropertyString(format map[string]any, data, path string) error {
	res, err := ParsePropertyString(format, data)
	if err != nil {
		return err
	}
	vals := map[string]any{}
	for k, v := range res {
		vals[k] = v
	}
	errs := map[string]string{}
	s.checkObject(path, format, vals, false, errs)
	if len(errs) > 0 {
		return formatError(errs)
	}
	return nil
}

type regexpCache struct {
	re  *regexp.Regexp
	err error
}

// regexp compiles a schema pattern (Perl syntax) anchored as PVE anchors it, m/^$pattern$/.
func (s *Schema) regexp(p string) (*regexp.Regexp, error) {
	s.reMu.Lock()
	defer s.reMu.Unlock()
	if c, ok := s.re[p]; ok {
		return c.re, c.err
	}
	re, err := regexp.Compile("^(?:" + perlToGo(p) + ")$")
	s.re[p] = &regexpCache{re, err}
	return re, err
}

// perlToGo rewrites the Perl-only syntax apidata.js patterns use: qr// stringifies as
// (?^:...) or (?^i:...), which RE2 writes (?:...) and (?i:...).
func perlToGo(p string) string {
	p = strings.ReplaceAll(p, "(?^:", "(?:")
	p = strings.ReplaceAll(p, "(?^i:", "(?i:")
	p = strings.ReplaceAll(p, "(?^u:", "(?:")
	return p
}
