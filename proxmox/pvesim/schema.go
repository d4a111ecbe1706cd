package pvesim

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
)

// apidataGz is pve-docs' api-viewer/apidata.js (see apidata/SOURCE): the schema real PVE
// validates every request against, so the emulator rejects what PVE rejects.
//
//go:embed apidata/apidata.js.gz
var apidataGz []byte

// Schema is the PVE API schema: every path with its methods and their parameter schemas.
type Schema struct {
	root *pathNode
	// Paths counts the API paths in the schema.
	Paths int

	reMu sync.Mutex
	re   map[string]*regexpCache
}

// Method is one method of one API path, as apidata.js describes it.
type Method struct {
	// Path is the schema path, with its {param} placeholders.
	Path string
	// Verb is GET, POST, PUT or DELETE.
	Verb string
	// Name is the method's name in the schema (e.g. "create_vm").
	Name string
	// AllowToken is false for the methods PVE refuses to API tokens.
	AllowToken bool
	// Protected methods run in PVE's privileged daemon.
	Protected bool
	// Parameters is the parameter schema (an object schema).
	Parameters map[string]any
	// Returns is the return schema.
	Returns map[string]any
}

type pathNode struct {
	path     string
	children map[string]*pathNode
	// param is the {name} child, if any
	param     *pathNode
	paramName string
	methods   map[string]*Method
}

var loadSchema = sync.OnceValues(func() (*Schema, error) {
	zr, err := gzip.NewReader(bytes.NewReader(apidataGz))
	if err != nil {
		return nil, fmt.Errorf("pvesim: embedded schema: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("pvesim: embedded schema: %w", err)
	}
	return ParseSchema(raw)
})

// LoadSchema returns the embedded PVE API schema, parsed once per process. The value is
// never modified after parsing, so every server shares it.
func LoadSchema() (*Schema, error) { return loadSchema() }

// ParseSchema parses the text of apidata.js (`const apiSchema = [...];`).
func ParseSchema(js []byte) (*Schema, error) {
	start := bytes.IndexByte(js, '[')
	end := bytes.LastIndexByte(js, ']')
	if start < 0 || end < start {
		return nil, fmt.Errorf("pvesim: schema: no apiSchema array")
	}
	var tree []map[string]any
	d := json.NewDecoder(bytes.NewReader(js[start : end+1]))
	d.UseNumber()
	if err := d.Decode(&tree); err != nil {
		return nil, fmt.Errorf("pvesim: schema: %w", err)
	}
	s := &Schema{root: &pathNode{children: map[string]*pathNode{}}, re: map[string]*regexpCache{}}
	var walk func([]map[string]any) error
	walk = func(nodes []map[string]any) error {
		for _, n := range nodes {
			p, _ := n["path"].(string)
			if p == "" {
				return fmt.Errorf("pvesim: schema: node without path")
			}
			s.Paths++
			pn := s.node(p)
			if info, ok := n["info"].(map[string]any); ok {
				for verb, mi := range info {
					m, _ := mi.(map[string]any)
					if m == nil {
						continue
					}
					meth := &Method{Path: p, Verb: verb}
					meth.Name, _ = m["name"].(string)
					meth.AllowToken = !isFalse(m["allowtoken"])
					meth.Protected = isTrue(m["protected"])
					meth.Parameters, _ = m["parameters"].(map[string]any)
					meth.Returns, _ = m["returns"].(map[string]any)
					if meth.Parameters == nil {
						meth.Parameters = map[string]any{"type": "object", "properties": map[string]any{}}
					}
					pn.methods[verb] = meth
				}
			}
			if kids, ok := n["children"].([]any); ok {
				var cs []map[string]any
				for _, k := range kids {
					if km, ok := k.(map[string]any); ok {
						cs = append(cs, km)
					}
				}
				if err := walk(cs); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(tree); err != nil {
		return nil, err
	}
	return s, nil
}

// node returns (creating) the tree node of a schema path.
func (s *Schema) node(p string) *pathNode {
	n := s.root
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg == "" {
			continue
		}
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			if n.param == nil {
				n.param = &pathNode{children: map[string]*pathNode{}, methods: map[string]*Method{}}
				n.paramName = seg[1 : len(seg)-1]
			}
			n = n.param
			continue
		}
		c := n.children[seg]
		if c == nil {
			c = &pathNode{children: map[string]*pathNode{}, methods: map[string]*Method{}}
			n.children[seg] = c
		}
		n = c
	}
	if n.methods == nil {
		n.methods = map[string]*Method{}
	}
	n.path = p
	return n
}

// Lookup finds the schema path an escaped request path (below /api2/json) belongs to, and
// the values of its {param} segments. A literal segment wins over a parameter, as in
// pve-http-server's router. ok is false when no schema path matches.
func (s *Schema) Lookup(escapedPath string) (schemaPath string, pathParams map[string]string, methods map[string]*Method, ok bool) {
	n := s.root
	pathParams = map[string]string{}
	for _, seg := range strings.Split(strings.Trim(escapedPath, "/"), "/") {
		if seg == "" {
			continue
		}
		v, err := url.PathUnescape(seg)
		if err != nil {
			return "", nil, nil, false
		}
		if c := n.children[v]; c != nil {
			n = c
			continue
		}
		if n.param == nil {
			return "", nil, nil, false
		}
		pathParams[n.paramName] = v
		n = n.param
	}
	if n.path == "" {
		return "", nil, nil, false
	}
	return n.path, pathParams, n.methods, true
}

// Method returns the schema of one method of a schema path, or nil.
func (s *Schema) Method(verb, schemaPath string) *Method {
	_, _, ms, ok := s.Lookup(schemaPath)
	if !ok {
		return nil
	}
	return ms[verb]
}

func isTrue(v any) bool {
	switch x := v.(type) {
	case json.Number:
		return x.String() != "0"
	case bool:
		return x
	case string:
		return x == "1"
	}
	return false
}

func isFalse(v any) bool {
	switch x := v.(type) {
	case json.Number:
		return x.String() == "0"
	case bool:
		return !x
	case string:
		return x == "0"
	}
	return false
}
