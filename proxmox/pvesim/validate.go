package pvesim

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file checks request parameters against the schema the way pve-common's
// PVE::JSONSchema (check_prop, check_object, check_type, check_format) does, with the same
// messages, so that a client sees here the 400 "Parameter verification failed." with the
// per-parameter errors real PVE would give. What it does not check is listed in README.md.

// Params are a request's parameters: query, form or JSON body, plus the path parameters.
// A value is a string (query and form), or what encoding/json gives with UseNumber.
type Params map[string]any

// Check validates params against m's parameter schema. It returns the errors keyed by
// parameter, nil when the parameters are valid.
func (s *Schema) Check(m *Method, params Params) map[string]string {
	errs := map[string]string{}
	props, _ := m.Parameters["properties"].(map[string]any)
	s.checkObject("", props, map[string]any(params), m.Parameters["additionalProperties"], errs)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func addError(errs map[string]string, path, msg string) {
	if path == "" {
		path = "_root"
	}
	if old, ok := errs[path]; ok {
		// PVE joins with a single-quoted '\n': a backslash and an n, not a newline.
		errs[path] = old + `\n` + msg
		return
	}
	errs[path] = msg
}

// indexedMax is how many of each `name[n]` key PVE allows (MAX_LXC_NETWORKS,
// MAX_MOUNT_POINTS, qemu-server's MAX_* constants); the rest default to 256.
var indexedMax = map[string]int{
	"net": 32, "ipconfig": 32, "ide": 4, "sata": 6, "scsi": 31, "virtio": 16,
	"hostpci": 16, "serial": 4, "parallel": 3, "usb": 14, "numa": 8, "virtiofs": 10,
}

// schemaKeyFor maps a parameter name to its schema key: net0 -> "net[n]" when the schema
// has an indexed key, else the name itself.
func schemaKeyFor(props map[string]any, k string) string {
	if _, ok := props[k]; ok {
		return k
	}
	i := len(k)
	for i > 0 && k[i-1] >= '0' && k[i-1] <= '9' {
		i--
	}
	if i == len(k) || i == 0 {
		return k
	}
	base, num := k[:i], k[i:]
	if len(num) > 1 && num[0] == '0' {
		return k
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return k
	}
	max := 256
	if m, ok := indexedMax[base]; ok {
		max = m
	}
	if n >= max {
		return k
	}
	if _, ok := props[base+"[n]"]; ok {
		return base + "[n]"
	}
	return k
}

func (s *Schema) checkObject(path string, props map[string]any, value map[string]any, additional any, errs map[string]string) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	for _, k := range sortedKeys(props) {
		if strings.HasSuffix(k, "[n]") {
			continue // indexed keys are never required; their values are checked below
		}
		sch, _ := props[k].(map[string]any)
		if sch == nil {
			continue
		}
		s.checkProp(value[k], value[k] != nil, sch, join(k), errs)
	}
	for _, k := range sortedKeys(value) {
		sk := schemaKeyFor(props, k)
		sch, _ := props[sk].(map[string]any)
		if sch != nil {
			if req, ok := sch["requires"].(string); ok {
				if _, has := value[req]; !has {
					addError(errs, join(req), fmt.Sprintf("missing property required by '%s'", join(k)))
				}
			}
			if sk != k {
				s.checkProp(value[k], true, sch, join(k), errs)
			}
			continue
		}
		if additional == nil || isTrue(additional) {
			continue
		}
		if isFalse(additional) {
			addError(errs, join(k), "property is not defined in schema and the schema does not allow additional properties")
			continue
		}
		if as, ok := additional.(map[string]any); ok {
			s.checkProp(value[k], true, as, join(k), errs)
		}
	}
}

func (s *Schema) checkProp(value any, present bool, sch map[string]any, path string, errs map[string]string) {
	if _, ok := sch["alias"]; ok {
		return
	}
	if !present || value == nil {
		if sch["type"] == "null" {
			return
		}
		if !isTrue(sch["optional"]) && !isTrue(sch["group"]) {
			addError(errs, path, "property is missing and it is not optional")
		}
		return
	}
	if !checkType(path, sch["type"], value, errs) {
		return
	}
	switch v := value.(type) {
	case []any:
		if items, ok := sch["items"].(map[string]any); ok {
			for i, el := range v {
				s.checkProp(el, true, items, fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
		return
	case map[string]any:
		props, _ := sch["properties"].(map[string]any)
		if props != nil || sch["additionalProperties"] != nil {
			s.checkObject(path, props, v, sch["additionalProperties"], errs)
		}
		return
	}
	str := scalarString(value)
	if f, ok := sch["format"]; ok && f != nil {
		if err := s.checkFormat(f, str, path); err != nil {
			addError(errs, path, "invalid format - "+err.Error()+"\n")
			return
		}
	}
	if p, ok := sch["pattern"].(string); ok && p != "" {
		re, err := s.regexp(p)
		if err != nil || !re.MatchString(str) {
			addError(errs, path, "value does not match the regex pattern")
			return
		}
	}
	// Perl's length counts the characters of the decoded value, not its UTF-8 bytes
	if max, ok := numberOf(sch["maxLength"]); ok && float64(utf8.RuneCountInString(str)) > max {
		addError(errs, path, fmt.Sprintf("value may only be %s characters long", numText(sch["maxLength"])))
		return
	}
	if min, ok := numberOf(sch["minLength"]); ok && float64(utf8.RuneCountInString(str)) < min {
		addError(errs, path, fmt.Sprintf("value must be at least %s characters long", numText(sch["minLength"])))
		return
	}
	if isNumber(str) {
		if max, ok := numberOf(sch["maximum"]); ok && cmpNumber(str, max) > 0 {
			addError(errs, path, "value must have a maximum value of "+numText(sch["maximum"]))
			return
		}
		if min, ok := numberOf(sch["minimum"]); ok && cmpNumber(str, min) < 0 {
			addError(errs, path, "value must have a minimum value of "+numText(sch["minimum"]))
			return
		}
	}
	if enum, ok := sch["enum"].([]any); ok {
		var names []string
		found := false
		for _, e := range enum {
			es := scalarString(e)
			names = append(names, es)
			if es == str {
				found = true
			}
		}
		if !found {
			addError(errs, path, fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", str, strings.Join(names, ", ")))
		}
	}
}

var (
	reInteger = regexp.MustCompile(`^[+-]?\d+$`)
	reNumber  = regexp.MustCompile(`^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$`)
)

func isNumber(s string) bool  { return reNumber.MatchString(s) }
func isInteger(s string) bool { return reInteger.MatchString(s) }

// perlRef is what Perl's ref() names a decoded JSON value, as PVE prints it in type errors.
func perlRef(v any) string {
	switch v.(type) {
	case bool:
		return "JSON::PP::Boolean"
	case []any:
		return "ARRAY"
	case map[string]any:
		return "HASH"
	}
	return ""
}

func checkType(path string, t any, value any, errs map[string]string) bool {
	if t == nil {
		return true
	}
	if ts, ok := t.([]any); ok {
		var names []string
		for _, one := range ts {
			tmp := map[string]string{}
			if checkType(path, one, value, tmp) {
				return true
			}
			names = append(names, scalarString(one))
		}
		addError(errs, path, fmt.Sprintf("type check ('%s') failed", strings.Join(names, "|")))
		return false
	}
	typ, _ := t.(string)
	switch typ {
	case "any", "":
		return true
	case "null":
		addError(errs, path, "type check ('null') failed - value is not null")
		return false
	case "array":
		if _, ok := value.([]any); !ok {
			addError(errs, path, "type check ('array') failed")
			return false
		}
		return true
	case "object":
		if _, ok := value.(map[string]any); !ok {
			addError(errs, path, "type check ('object') failed")
			return false
		}
		return true
	}
	if ref := perlRef(value); ref != "" {
		if typ == "boolean" && ref == "JSON::PP::Boolean" {
			return true
		}
		addError(errs, path, fmt.Sprintf("type check ('%s') failed - got %s", typ, ref))
		return false
	}
	s := scalarString(value)
	switch typ {
	case "boolean":
		if s == "1" || s == "0" {
			return true
		}
	case "integer":
		if isInteger(s) {
			return true
		}
	case "number":
		if isNumber(s) {
			return true
		}
	default:
		return true
	}
	addError(errs, path, fmt.Sprintf("type check ('%s') failed - got '%s'", typ, s))
	return false
}

func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "1"
		}
		return "0"
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func numberOf(v any) (float64, bool) {
	s := scalarString(v)
	if v == nil || !isNumber(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// numText prints a schema bound the way Perl interpolates it.
func numText(v any) string { return scalarString(v) }

// cmpNumber compares a decimal string with a bound exactly enough for vmids and sizes.
func cmpNumber(s string, bound float64) int {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0
	}
	b := new(big.Rat)
	b.SetFloat64(bound)
	return r.Cmp(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
