package lxcstart

import (
	"reflect"
	"testing"

	"github.com/containerd/console"
)

func TestPendingSize(t *testing.T) {
	a, b := console.WinSize{Width: 80, Height: 24}, console.WinSize{Width: 100, Height: 30}
	for _, tc := range []struct {
		name        string
		before      []console.WinSize // resizes before the terminal is attached
		wantPending *console.WinSize  // what Size and Attached give
	}{
		{name: "none"},
		{name: "one", before: []console.WinSize{a}, wantPending: &a},
		{name: "the last counts", before: []console.WinSize{a, b}, wantPending: &b},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s PendingSize
			for _, ws := range tc.before {
				if !s.Keep(ws) {
					t.Fatalf("Keep(%v) before the terminal is attached = false", ws)
				}
			}
			if got := s.Size(); !reflect.DeepEqual(got, tc.wantPending) {
				t.Errorf("Size = %v, want %v", got, tc.wantPending)
			}
			if got := s.Attached(); !reflect.DeepEqual(got, tc.wantPending) {
				t.Errorf("Attached = %v, want %v", got, tc.wantPending)
			}
			// Attached: resizes go to the terminal, nothing is kept.
			if s.Keep(a) {
				t.Error("Keep after Attached = true")
			}
			if got := s.Size(); got != nil {
				t.Errorf("Size after Attached = %v, want nil", got)
			}
		})
	}
}
