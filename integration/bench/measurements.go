//go:build linux

package bench

import "slices"

// measurement is one measurement of a run: its code is run (in a file of its own, named
// after it), its method is the template of the same name in method.md.tmpl.
type measurement struct {
	// Key names it in -only and its method's template.
	Key string
	run func(*runner) error
}

// measurements are every measurement of a run, in the order they run and are reported.
// A new one is a file with its run function, a line here and a method template.
var measurements = []measurement{
	{"ctr-run", (*runner).measureCtrRun},
	{"lifecycle", (*runner).measureClientLifecycle},
	{"memory", (*runner).measureMemory},
	{"churn", (*runner).measureChurn},
	{"exec", (*runner).measureExec},
	{"checkpoint-fs", (*runner).measureCheckpoint},
	{"checkpoint-api", (*runner).measureCheckpointAPI},
}

// MeasurementKeys lists the keys of every measurement, in the order they run.
func MeasurementKeys() []string {
	var out []string
	for _, m := range measurements {
		out = append(out, m.Key)
	}
	return out
}

func measurementByKey(k string) *measurement {
	for i := range measurements {
		if measurements[i].Key == k {
			return &measurements[i]
		}
	}
	return nil
}

// selected are the measurements Options.Only chooses (all when empty).
func (r *runner) selected() []measurement {
	var out []measurement
	for _, m := range measurements {
		if len(r.o.Only) == 0 || slices.Contains(r.o.Only, m.Key) {
			out = append(out, m)
		}
	}
	return out
}
