package proxmoxlxc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBuildTemplate(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.WriteFile(filepath.Join(root, "bin", "hello"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.Symlink("hello", filepath.Join(root, "bin", "hi"))
	spec := templateSpec{Rootfs: root, Pause: []byte("PAUSE")}

	build := func(s templateSpec) ([]byte, string) {
		var buf bytes.Buffer
		d, err := buildTemplate(context.Background(), &buf, s, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return buf.Bytes(), d.String()
	}
	a, da := build(spec)
	b, db := build(spec)
	if da != db || !bytes.Equal(a, b) {
		t.Fatalf("two builds of one root differ: %s %s", da, db)
	}
	other := spec
	other.Pause = []byte("PAUSE2")
	if _, dc := build(other); dc == da {
		t.Fatalf("another init gives the same template %s", dc)
	}

	// The archive is an OCI image layout whose manifest names a config with the init as
	// entrypoint, and layers holding the root and the init.
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(a))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest.String() != da {
		t.Fatalf("index.json %s: %v", files["index.json"], err)
	}
	if _, ok := files["oci-layout"]; !ok {
		t.Fatal("no oci-layout")
	}
	var m ocispec.Manifest
	json.Unmarshal(files[blobPath(idx.Manifests[0].Digest)], &m)
	var cfg ocispec.Image
	json.Unmarshal(files[blobPath(m.Config.Digest)], &cfg)
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != pauseInCT {
		t.Fatalf("image config %+v", cfg.Config)
	}
	if len(m.Layers) != 2 || len(cfg.RootFS.DiffIDs) != 2 {
		t.Fatalf("layers %d, diff ids %d", len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	names := func(blob []byte) map[string]bool {
		zr, err := gzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = true
		}
	}
	if l := names(files[blobPath(m.Layers[0].Digest)]); !l["bin/hello"] || !l["bin/hi"] {
		t.Errorf("root layer holds %v", l)
	}
	if l := names(files[blobPath(m.Layers[1].Digest)]); !l[".lxcri/pause"] {
		t.Errorf("init layer holds %v", l)
	}
}
