//go:build linux

package harness

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// LayerEntry is one file system object of a layer added by ImageWithLayer.
type LayerEntry struct {
	// Name is the path in the image, without a leading slash (e.g. "lnk").
	Name string
	// Symlink, when set, makes the entry a symbolic link to this target.
	Symlink string
	// Dir makes the entry a directory; otherwise (and without Symlink) a regular file.
	Dir bool
	// Body is a regular file's content.
	Body []byte
}

// ImageWithLayer writes, under dir, an OCI image-layout tarball of the busybox image with
// one more layer holding entries, named ref, and returns its path. It lets a test give a
// container a root filesystem a registry image could carry (such as a symlink pointing out
// of the rootfs) without a registry or an image builder.
func ImageWithLayer(t testing.TB, dir, ref string, entries ...LayerEntry) string {
	t.Helper()
	blobs, err := readTar(BusyboxImage(t))
	if err != nil {
		t.Fatalf("harness: reading the busybox image: %v", err)
	}
	out := filepath.Join(dir, "image-"+randHex(4)+".oci.tar")
	if err := writeDerivedImage(blobs, out, ref, entries); err != nil {
		t.Fatalf("harness: building image %s: %v", ref, err)
	}
	return out
}

func readTar(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[strings.TrimPrefix(h.Name, "./")] = b
	}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// layerTar is an uncompressed layer with entries, owned by root.
func layerTar(entries []LayerEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case e.Symlink != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.Symlink, 0o777
		case e.Dir:
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		default:
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeDerivedImage(files map[string][]byte, out, ref string, entries []LayerEntry) error {
	blob := func(d string) ([]byte, error) {
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")]
		if !ok {
			return nil, fmt.Errorf("blob %s missing", d)
		}
		return b, nil
	}
	var index struct {
		Manifests []struct {
			Digest   string         `json:"digest"`
			Platform map[string]any `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		return fmt.Errorf("index.json: want one manifest (%v)", err)
	}
	mb, err := blob(index.Manifests[0].Digest)
	if err != nil {
		return err
	}
	var manifest map[string]any
	if err := json.Unmarshal(mb, &manifest); err != nil {
		return err
	}
	cdesc, _ := manifest["config"].(map[string]any)
	cd, _ := cdesc["digest"].(string)
	cb, err := blob(cd)
	if err != nil {
		return err
	}
	var config map[string]any
	if err := json.Unmarshal(cb, &config); err != nil {
		return err
	}

	layer, err := layerTar(entries)
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer)
	if err := zw.Close(); err != nil {
		return err
	}
	newBlobs := map[string][]byte{}
	add := func(b []byte) (string, int) {
		d := digestOf(b)
		newBlobs[d] = b
		return "sha256:" + d, len(b)
	}
	ld, lsize := add(gz.Bytes())

	rootfs, _ := config["rootfs"].(map[string]any)
	ids, _ := rootfs["diff_ids"].([]any)
	rootfs["diff_ids"] = append(ids, "sha256:"+digestOf(layer))
	hist, _ := config["history"].([]any)
	config["history"] = append(hist, map[string]any{"created": "2020-01-01T00:00:00Z", "created_by": "lxcri harness layer"})
	ncb, err := json.Marshal(config)
	if err != nil {
		return err
	}
	ncd, ncsize := add(ncb)
	cdesc["digest"], cdesc["size"] = ncd, ncsize
	layers, _ := manifest["layers"].([]any)
	manifest["layers"] = append(layers, map[string]any{
		"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": lsize,
	})
	nmb, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	nmd, nmsize := add(nmb)
	tag := ref[strings.LastIndex(ref, ":")+1:]
	nib, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": nmd, "size": nmsize,
			"platform":    index.Manifests[0].Platform,
			"annotations": map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag},
		}},
	})
	if err != nil {
		return err
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put("oci-layout", files["oci-layout"]); err != nil {
		return err
	}
	if err := put("index.json", nib); err != nil {
		return err
	}
	for name, b := range files {
		if strings.HasPrefix(name, "blobs/") {
			if err := put(name, b); err != nil {
				return err
			}
		}
	}
	for d, b := range newBlobs {
		if err := put("blobs/sha256/"+d, b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
