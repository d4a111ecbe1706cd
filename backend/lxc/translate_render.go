package lxc

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Item is one LXC configuration line, key = value.
type Item struct {
	Key, Value string
}

// item is an Item with the spec field it came from, so that even the final check in
// Render can name the field.
type item struct {
	Item
	field string
}

// configKey is the grammar of every key Translate writes: "lxc" and dot-separated names.
// It leaves out '=', blanks, line breaks and NUL, so a key can neither end early nor
// start a second line; a name built from the spec (an rlimit, a cgroup file, a hugepage
// size) cannot get anything past it.
var configKey = regexp.MustCompile(`^lxc(\.[A-Za-z0-9_-]+)+$`)

// checkKey checks a key against configKey.
func checkKey(key string) error {
	if !configKey.MatchString(key) {
		return fmt.Errorf("%q is not a valid LXC configuration key", key)
	}
	return nil
}

// checkValue refuses what an LXC configuration line cannot carry as it is. liblxc reads
// the file line by line, splitting at \n, \r and NUL (so any of them would start a line
// of the spec's choosing, e.g. an lxc.hook.* running a host command); it strips the
// blanks around a value and a pair of quotes enclosing it; and it takes an empty value
// to clear what earlier lines of the key set.
func checkValue(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("empty value, which LXC would take to clear the key")
	case strings.ContainsAny(v, "\n\r\x00"):
		return fmt.Errorf("value %q contains a line break or NUL, which an LXC configuration line cannot carry", v)
	case strings.TrimSpace(v) != v:
		return fmt.Errorf("value %q has leading or trailing blanks, which LXC would strip", v)
	case len(v) > 1 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0]:
		return fmt.Errorf("value %q is enclosed in quotes, which LXC would strip", v)
	}
	return nil
}

// add appends an item. It is the only way a line gets into a Result: the key and value
// are checked here, whatever their origin, and a refusal names field.
func (t *translator) add(field, key, value string) error {
	if err := checkKey(key); err != nil {
		return fieldErr(field, "%v", err)
	}
	if err := checkValue(value); err != nil {
		return fieldErr(field, "%v", err)
	}
	t.r.items = append(t.r.items, item{Item{Key: key, Value: value}, field})
	return nil
}

// addHook adds an lxc.hook.<kind> running the helper with args. Every argument is
// shell-quoted (liblxc runs the value with sh -c) and the line goes through add like
// any other, so an argument can neither end the line nor the command.
func (t *translator) addHook(field, kind string, args ...string) error {
	if t.o.Helper == "" {
		return fieldErr(field, "needs the lxcri-start helper")
	}
	return t.add(field, "lxc.hook."+kind, hookCommand(t.o.Helper, args...))
}

// hookCommand is an lxc.hook.* value running the helper. LXC runs "exec " + value with
// sh -c; its configuration parser strips quotes enclosing a whole value, so a value that
// would start and end with a quote gets a trailing comment.
func hookCommand(helper string, args ...string) string {
	cmd := quoteIfNeeded(helper)
	for _, a := range args {
		cmd += " " + quoteIfNeeded(a)
	}
	if cmd[0] == '\'' && cmd[len(cmd)-1] == '\'' {
		cmd += " #"
	}
	return cmd
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)

func quoteIfNeeded(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return quoteShell(s)
}

func quoteShell(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fstabEscape escapes a field of an fstab line (an lxc.mount.entry value) the way
// getmntent(3) decodes it, so that no byte of it can end the field or the line. (glibc
// does not decode \015: mountField refuses a carriage return before it gets here.)
func fstabEscape(s string) string {
	r := strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`, "\r", `\015`)
	return r.Replace(s)
}

// mountField checks a field of a mount entry: a NUL cannot be escaped, and glibc's
// getmntent leaves \015 as it is, so a carriage return could only reach the mount as
// another path.
func mountField(field, s string) error {
	if strings.ContainsAny(s, "\x00\r") {
		return fieldErr(field, "%q contains a NUL or carriage return, which a mount entry cannot carry", s)
	}
	return nil
}

// mountEntry is the value of an lxc.mount.entry, every field fstab-escaped. No options
// are "defaults": an empty field would shift the fields after it.
func mountEntry(src, target, typ string, opts []string) string {
	if len(opts) == 0 {
		opts = []string{"defaults"}
	}
	escaped := make([]string, len(opts))
	for i, o := range opts {
		escaped[i] = fstabEscape(o)
	}
	return fmt.Sprintf("%s %s %s %s 0 0", fstabEscape(src), fstabEscape(target), fstabEscape(typ), strings.Join(escaped, ","))
}

// Items returns the configuration items, in order.
func (r *Result) Items() []Item {
	items := make([]Item, len(r.items))
	for i, it := range r.items {
		items[i] = it.Item
	}
	return items
}

// Render returns the configuration file's text. Every item is checked once more, so that
// a line that could reach the file unchecked is an error, not a configuration. The file
// is readable by all: it holds nothing of the init's arguments or environment.
func (r *Result) Render() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Generated by lxcri from an OCI runtime spec; do not edit.\n")
	for _, it := range r.items {
		if err := checkKey(it.Key); err != nil {
			return nil, fieldErr(it.field, "%v", err)
		}
		if err := checkValue(it.Value); err != nil {
			return nil, fieldErr(it.field, "%v", err)
		}
		b.WriteString(it.Key)
		b.WriteString(" = ")
		b.WriteString(it.Value)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// Get returns the values of key, in order.
func (r *Result) Get(key string) []string {
	var vs []string
	for _, it := range r.items {
		if it.Key == key {
			vs = append(vs, it.Value)
		}
	}
	return vs
}
