package shim

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/lxcri/lxcri/runtime"
)

// The shim keeps two small files in the bundle so that `delete` after a crashed shim knows
// which backend to ask for cleanup and what the init's exit was. The record holds the
// configuration without its secrets (Config.Redacted).
const (
	recordFile = "lxcri.json"
	exitFile   = "lxcri-exit.json"
)

type record struct {
	Backend  string          `json:"backend"`
	StateDir string          `json:"state_dir"`
	Config   *runtime.Config `json:"config"`
}

func writeRecord(bundle string, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, recordFile), b, 0o600)
}

func readRecord(bundle string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(bundle, recordFile))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func removeRecord(bundle string) {
	os.Remove(filepath.Join(bundle, recordFile))
	os.Remove(filepath.Join(bundle, exitFile))
}

func writeExit(bundle string, e runtime.Exit) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, exitFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, exitFile))
}

func readExit(bundle string) (runtime.Exit, error) {
	var e runtime.Exit
	b, err := os.ReadFile(filepath.Join(bundle, exitFile))
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(b, &e)
}
