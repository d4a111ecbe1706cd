package runtime

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
)

func TestFieldError(t *testing.T) {
	err := fmt.Errorf("create: %w", FieldErrorf("linux.resources.memory.swap", "%d is below the limit", 5))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "linux.resources.memory.swap" {
		t.Fatalf("no FieldError in %v", err)
	}
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("%v is not InvalidArgument", err)
	}
	if got, want := err.Error(), "create: OCI spec linux.resources.memory.swap: 5 is below the limit"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
