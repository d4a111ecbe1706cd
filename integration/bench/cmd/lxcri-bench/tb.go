//go:build linux

package main

import (
	"fmt"
	"log"
	"os"
	"sync"
	"testing"
)

// tb is the testing.TB that integration/harness and integration/bench get outside of
// `go test`: Fatal ends the run through a panic that run recovers, Cleanup functions run
// once at the end (last registered first). Methods the harness does not use are left to
// the nil embedded interface.
type tb struct {
	testing.TB

	verbose  bool
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

type fatal string

func (t *tb) Helper()      {}
func (t *tb) Name() string { return "lxcri-bench" }

func (t *tb) Log(args ...any) {
	if t.verbose {
		log.Print(args...)
	}
}

func (t *tb) Logf(format string, args ...any) {
	if t.verbose {
		log.Printf(format, args...)
	}
}

func (t *tb) Error(args ...any) { t.Fail(); log.Print(append([]any{"error: "}, args...)...) }

func (t *tb) Errorf(format string, args ...any) { t.Fail(); log.Printf("error: "+format, args...) }

func (t *tb) Fatal(args ...any) { t.Fail(); panic(fatal(fmt.Sprint(args...))) }

func (t *tb) Fatalf(format string, args ...any) { t.Fail(); panic(fatal(fmt.Sprintf(format, args...))) }

func (t *tb) FailNow() { t.Fail(); panic(fatal("FailNow")) }

func (t *tb) Fail() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}

func (t *tb) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *tb) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

func (t *tb) TempDir() string {
	d, err := os.MkdirTemp("", "lxcri-bench-")
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (t *tb) Setenv(key, value string) {
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

// cleanup runs the registered functions, last first, each once; a Fatal inside one is
// logged and the rest still run.
func (t *tb) cleanup() {
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
