package shim

import (
	"context"
	"testing"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/lxcri/lxcri/runtime"
)

// TestTaskLog: lines logged through a task's context carry its namespace, id, backend and
// dataset, and debug = true raises the level so that debug lines are written.
func TestTaskLog(t *testing.T) {
	logger, hook := test.NewNullLogger()
	logger.SetLevel(logrus.InfoLevel)
	old := log.L
	log.L = logrus.NewEntry(logger)
	t.Cleanup(func() { log.L = old })

	cfg := runtime.DefaultConfig()
	cfg.ZFS.Dataset = "tank/lxcri"
	ctx := withTaskLog(context.Background(), "k8s.io", "c1", cfg)
	log.G(ctx).Info("hello")
	e := hook.LastEntry()
	if e == nil {
		t.Fatal("nothing logged")
	}
	want := map[string]string{"namespace": "k8s.io", "id": "c1", "backend": "lxc", "dataset": "tank/lxcri/ct-k8s.io--c1"}
	for k, v := range want {
		if e.Data[k] != v {
			t.Errorf("field %s = %v, want %s", k, e.Data[k], v)
		}
	}

	cfg = runtime.DefaultConfig()
	ctx = withTaskLog(context.Background(), "ns", "c2", cfg)
	log.G(ctx).Info("no zfs")
	if _, ok := hook.LastEntry().Data["dataset"]; ok {
		t.Error("a container without ZFS has a dataset field")
	}
	log.G(ctx).Debug("hidden")
	if logger.GetLevel() != logrus.InfoLevel || hook.LastEntry().Message == "hidden" {
		t.Fatalf("level %v without debug", logger.GetLevel())
	}
	cfg.Debug = true
	ctx = withTaskLog(ctx, "ns", "c3", cfg)
	log.G(ctx).Debug("shown")
	if logger.GetLevel() != logrus.DebugLevel || hook.LastEntry().Message != "shown" || hook.LastEntry().Data["id"] != "c3" {
		t.Errorf("debug = true: level %v, last line %q", logger.GetLevel(), hook.LastEntry().Message)
	}
}
