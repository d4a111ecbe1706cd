//go:build linux

package harness

import (
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"testing"
)

// ProgramTB is the testing.TB that the harness and the packages built on it (bench,
// conformance) get in a program run outside of `go test`: Fatal ends the run through a
// panic of type Fatal that the program recovers (see Do), Cleanup functions run once at
// the end (RunCleanups, last registered first). Methods the harness does not use are left
// to the nil embedded interface.
type ProgramTB struct {
	testing.TB

	name     string
	verbose  bool
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// Fatal is the panic value of ProgramTB's Fatal, Fatalf and FailNow.
type Fatal string

// NewProgramTB returns a ProgramTB named name; verbose lets Log and Logf through to the
// standard logger.
func NewProgramTB(name string, verbose bool) *ProgramTB {
	return &ProgramTB{name: name, verbose: verbose}
}

// Do runs f and returns its error, or the message of a Fatal raised inside it as an
// error. Other panics run the cleanups and go on.
func (t *ProgramTB) Do(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(Fatal); ok {
				err = errors.New(string(f))
				return
			}
			t.RunCleanups()
			panic(r)
		}
	}()
	return f()
}

func (t *ProgramTB) Helper()      {}
func (t *ProgramTB) Name() string { return t.name }

func (t *ProgramTB) Log(args ...any) {
	if t.verbose {
		log.Print(args...)
	}
}

func (t *ProgramTB) Logf(format string, args ...any) {
	if t.verbose {
		log.Printf(format, args...)
	}
}

func (t *ProgramTB) Error(args ...any) { t.Fail(); log.Print(append([]any{"error: "}, args...)...) }

func (t *ProgramTB) Errorf(format string, args ...any) {
	t.Fail()
	log.Printf("error: "+format, args...)
}

func (t *ProgramTB) Fatal(args ...any) { t.Fail(); panic(Fatal(fmt.Sprint(args...))) }

func (t *ProgramTB) Fatalf(format string, args ...any) {
	t.Fail()
	panic(Fatal(fmt.Sprintf(format, args...)))
}

func (t *ProgramTB) FailNow() { t.Fail(); panic(Fatal("FailNow")) }

func (t *ProgramTB) Fail() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}

func (t *ProgramTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *ProgramTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

func (t *ProgramTB) TempDir() string {
	d, err := os.MkdirTemp("", t.name+"-")
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (t *ProgramTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	t.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

// RunCleanups runs the registered functions, last first, each once; a Fatal inside one is
// logged and the rest still run.
func (t *ProgramTB) RunCleanups() {
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					log.Printf("cleanup: %v", r)
				}
			}()
			f()
		}()
	}
}
