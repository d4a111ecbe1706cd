package runtime

import "reflect"

// Redacted returns a copy of c without its secrets: every field tagged `lxcri:"secret"`
// (at any depth) is zeroed. The shim writes this copy into the bundle's crash record,
// which outlives the shim and is readable by whoever reads the bundle; a backend that
// needs a secret after a crash reads it again from where the configuration names it (a
// file), never from the record.
func (c *Config) Redacted() *Config {
	cc := c.Clone()
	redact(reflect.ValueOf(cc).Elem())
	return cc
}

func redact(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			if !f.CanSet() {
				continue
			}
			if t.Field(i).Tag.Get("lxcri") == "secret" {
				f.Set(reflect.Zero(f.Type()))
				continue
			}
			redact(f)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			// Copy before zeroing: the pointee may be shared with the original.
			p := reflect.New(v.Elem().Type())
			p.Elem().Set(v.Elem())
			v.Set(p)
			redact(p.Elem())
		}
	}
}
