package proxmoxlxc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pauseInCT is where the CT's init lives in its root.
const pauseInCT = "/.lxcri/pause"

// templateSpec is what a CT template is made of besides the root filesystem.
type templateSpec struct {
	Rootfs string // the mounted root filesystem
	Pause  []byte // the lxcri-pause binary
}

// buildTemplate writes an OCI archive (an OCI image layout in a tar, as `skopeo copy
// oci-archive:` makes and PVE takes as a vztmpl) of the root filesystem plus the CT's
// init, to w. Everything in it is deterministic, so the same image gives the same bytes
// and the same digest, which names the template in PVE's storage: a cache per image. The
// task's process gets its cwd and user when it is attached, so they stay out of the image
// config (a cwd missing from the image would keep the CT's init from starting).
func buildTemplate(ctx context.Context, w io.Writer, t templateSpec, scratch string) (digest.Digest, error) {
	empty, err := os.MkdirTemp(scratch, "empty")
	if err != nil {
		return "", err
	}
	defer os.Remove(empty)

	rootLayer, err := os.CreateTemp(scratch, "layer")
	if err != nil {
		return "", err
	}
	defer os.Remove(rootLayer.Name())
	defer rootLayer.Close()
	rootDesc, rootDiff, err := gzipLayer(rootLayer, func(w io.Writer) error { return archive.WriteDiff(ctx, w, empty, t.Rootfs) })
	if err != nil {
		return "", fmt.Errorf("pack the root filesystem %s: %w", t.Rootfs, err)
	}

	var pauseLayer bytes.Buffer
	pauseDesc, pauseDiff, err := gzipLayer(&pauseLayer, func(w io.Writer) error { return pauseTar(w, t.Pause) })
	if err != nil {
		return "", err
	}

	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: goarch()},
		Config: ocispec.ImageConfig{
			Entrypoint: []string{pauseInCT},
			StopSignal: "SIGTERM",
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{rootDiff, pauseDiff}},
	}
	cfgBlob, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgBlob), Size: int64(len(cfgBlob))}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    []ocispec.Descriptor{rootDesc, pauseDesc},
	}
	mBlob, err := json.Marshal(manifest)
	if err != nil {
		return "", err
	}
	mDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mBlob), Size: int64(len(mBlob)),
		Annotations: map[string]string{ocispec.AnnotationRefName: "latest"}}
	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{mDesc}}
	iBlob, err := json.Marshal(index)
	if err != nil {
		return "", err
	}
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})

	tw := tar.NewWriter(w)
	add := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if _, err := rootLayer.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	for _, f := range []struct {
		name string
		size int64
		r    io.Reader
	}{
		{ocispec.ImageLayoutFile, int64(len(layout)), bytes.NewReader(layout)},
		{"index.json", int64(len(iBlob)), bytes.NewReader(iBlob)},
		{blobPath(mDesc.Digest), mDesc.Size, bytes.NewReader(mBlob)},
		{blobPath(cfgDesc.Digest), cfgDesc.Size, bytes.NewReader(cfgBlob)},
		{blobPath(rootDesc.Digest), rootDesc.Size, rootLayer},
		{blobPath(pauseDesc.Digest), pauseDesc.Size, &pauseLayer},
	} {
		if err := add(f.name, f.size, f.r); err != nil {
			return "", err
		}
	}
	return mDesc.Digest, tw.Close()
}

func blobPath(d digest.Digest) string {
	return filepath.Join("blobs", d.Algorithm().String(), d.Encoded())
}

// gzipLayer writes a gzip-compressed layer made by write to w, and returns its descriptor
// and its diff id (the digest of the uncompressed tar).
func gzipLayer(w io.Writer, write func(io.Writer) error) (ocispec.Descriptor, digest.Digest, error) {
	compressed := sha256.New()
	counter := &countWriter{w: io.MultiWriter(w, compressed)}
	gz, err := gzip.NewWriterLevel(counter, gzip.BestSpeed)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	uncompressed := sha256.New()
	if err := write(io.MultiWriter(gz, uncompressed)); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := gz.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: sum(compressed), Size: counter.n}, sum(uncompressed), nil
}

func sum(h hash.Hash) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pauseTar is the layer holding the CT's init.
func pauseTar(w io.Writer, pause []byte) error {
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Name: ".lxcri/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: ".lxcri/pause", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(pause)), ModTime: epoch}); err != nil {
		return err
	}
	if _, err := tw.Write(pause); err != nil {
		return err
	}
	return tw.Close()
}
