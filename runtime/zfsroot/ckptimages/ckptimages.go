//go:build linux

// Package ckptimages finds the lxcri checkpoints that containerd's checkpoint images
// hold, so that zfsroot.Sweep frees the rest: a checkpoint's ZFS snapshot lives as long as
// an image names it. containerd's garbage collector does not reach ZFS, so an operator
// (or the lxcri command) runs Sweep after removing checkpoint images.
package ckptimages

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
)

// maxIndexSize bounds the image indexes read.
const maxIndexSize = 4 << 20

// Descriptors returns the lxcri checkpoint descriptors of every checkpoint image of every
// namespace of c. An image whose checkpoint holds no valid descriptor (not lxcri's, or
// corrupt: it could not be restored) contributes none; an image whose content cannot be
// read fails the whole call, so that a sweep never frees what it could not look at.
func Descriptors(ctx context.Context, c *client.Client) ([]*zfsroot.Descriptor, error) {
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []*zfsroot.Descriptor
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		imgs, err := c.ImageService().List(nctx)
		if err != nil {
			return nil, fmt.Errorf("list images of namespace %s: %w", ns, err)
		}
		for _, img := range imgs {
			ds, err := fromImage(nctx, c.ContentStore(), img)
			if err != nil {
				return nil, fmt.Errorf("image %s of namespace %s: %w", img.Name, ns, err)
			}
			out = append(out, ds...)
		}
	}
	return out, nil
}

// Sweep is zfsroot.Sweep with the descriptors of c's checkpoint images, plus extra (those
// of checkpoint directories kept outside containerd, made with an image path).
func Sweep(ctx context.Context, c *client.Client, cfg *runtime.ZFSConfig, extra []*zfsroot.Descriptor, opts zfsroot.SweepOptions) (*zfsroot.SweepResult, error) {
	live, err := Descriptors(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("sweep: read the live checkpoints from containerd: %w", err)
	}
	return zfsroot.Sweep(ctx, cfg, append(live, extra...), opts)
}

// fromImage returns the descriptors of the checkpoint layers img's index lists.
func fromImage(ctx context.Context, cs content.Store, img images.Image) ([]*zfsroot.Descriptor, error) {
	var out []*zfsroot.Descriptor
	err := eachLayer(ctx, cs, img, func(d ocispec.Descriptor) error {
		desc, err := fromLayer(ctx, cs, d)
		if err != nil {
			return err
		}
		if desc != nil {
			out = append(out, desc)
		}
		return nil
	})
	return out, err
}

// Files returns the content of the file name (at the root of the checkpoint directory)
// in every checkpoint layer of every image of every namespace of c that has one: how a
// backend that keeps its checkpoints outside containerd (a PVE snapshot, say) learns
// which are still named. An image whose content cannot be read fails the whole call.
func Files(ctx context.Context, c *client.Client, name string) ([][]byte, error) {
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out [][]byte
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		imgs, err := c.ImageService().List(nctx)
		if err != nil {
			return nil, fmt.Errorf("list images of namespace %s: %w", ns, err)
		}
		for _, img := range imgs {
			err := eachLayer(nctx, c.ContentStore(), img, func(d ocispec.Descriptor) error {
				b, err := fileOfLayer(nctx, c.ContentStore(), d, name)
				if b != nil {
					out = append(out, b)
				}
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("image %s of namespace %s: %w", img.Name, ns, err)
			}
		}
	}
	return out, nil
}

// eachLayer calls f with each checkpoint layer img's index lists.
func eachLayer(ctx context.Context, cs content.Store, img images.Image, f func(ocispec.Descriptor) error) error {
	var walk func(d ocispec.Descriptor, depth int) error
	walk = func(d ocispec.Descriptor, depth int) error {
		switch {
		case d.MediaType == images.MediaTypeContainerd1Checkpoint:
			if err := f(d); err != nil {
				return err
			}
		case images.IsIndexType(d.MediaType) && depth < 4:
			if d.Size > maxIndexSize {
				return fmt.Errorf("index %s is larger than %d bytes", d.Digest, maxIndexSize)
			}
			b, err := content.ReadBlob(ctx, cs, d)
			if err != nil {
				return err
			}
			var idx ocispec.Index
			if err := json.Unmarshal(b, &idx); err != nil {
				return nil // not an index after all: no checkpoint there
			}
			for _, m := range idx.Manifests {
				if err := walk(m, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(img.Target, 0)
}

// fromLayer reads the descriptor out of a checkpoint layer.
func fromLayer(ctx context.Context, cs content.Store, d ocispec.Descriptor) (*zfsroot.Descriptor, error) {
	b, err := fileOfLayer(ctx, cs, d, zfsroot.DescriptorFile)
	if err != nil || b == nil {
		return nil, err
	}
	desc, err := zfsroot.ParseDescriptor(d.Digest.String()+"/"+zfsroot.DescriptorFile, b)
	if err != nil {
		log.G(ctx).WithError(err).Warnf("checkpoint layer %s: its descriptor is not valid: the checkpoint cannot be restored", d.Digest)
		return nil, nil
	}
	return desc, nil
}

// fileOfLayer reads file name out of a checkpoint layer (the tar of the checkpoint
// directory, where containerd's archive puts it before the stream: names are in order);
// nil without one.
func fileOfLayer(ctx context.Context, cs content.Store, d ocispec.Descriptor, name string) ([]byte, error) {
	ra, err := cs.ReaderAt(ctx, d)
	if errdefs.IsNotFound(err) {
		log.G(ctx).Warnf("checkpoint layer %s is missing: its checkpoint cannot be restored", d.Digest)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	rd, err := compression.DecompressStream(content.NewReader(ra))
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	tr := tar.NewReader(rd)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil // not an lxcri checkpoint
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint layer %s: %w", d.Digest, err)
		}
		if h.Typeflag != tar.TypeReg || path.Clean("/"+h.Name) != "/"+name {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, zfsroot.MaxDescriptorSize+1))
		if err != nil {
			return nil, fmt.Errorf("checkpoint layer %s: %w", d.Digest, err)
		}
		return b, nil
	}
}
