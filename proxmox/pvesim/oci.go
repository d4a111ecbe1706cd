package pvesim

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// This file turns an OCI image archive (an OCI image layout in a tar, as skopeo's
// oci-archive writes it and as PVE 9.1 accepts in vztmpl storage) into a CT root
// filesystem: the layers are squashed into one directory, as pve-container does, and the
// image config is returned for the CT config (entrypoint, env, user, cwd, stop signal).

// ociImageConfig is the part of an image config the CT config takes.
type ociImageConfig struct {
	Entrypoint []string            `json:"Entrypoint"`
	Cmd        []string            `json:"Cmd"`
	Env        []string            `json:"Env"`
	User       string              `json:"User"`
	WorkingDir string              `json:"WorkingDir"`
	StopSignal string              `json:"StopSignal"`
	Volumes    map[string]struct{} `json:"Volumes"`
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform,omitempty"`
}

type ociIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType,omitempty"`
	Manifests     []ociDescriptor `json:"manifests"`
}

type ociManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType,omitempty"`
	Config        ociDescriptor   `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
	Manifests     []ociDescriptor `json:"manifests,omitempty"`
}

const (
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
)

func isIndex(mt string) bool { return mt == mtOCIIndex || mt == mtDockerList }

// isOCIArchive reports whether a template is an OCI archive (oci-layout, index.json and
// blobs/ at its top), as pve-container's archive_is_oci_format.
func isOCIArchive(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var layout, index, blobs bool
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, nil
		}
		switch strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/") {
		case "oci-layout":
			layout = true
		case "index.json":
			index = true
		case "blobs":
			blobs = true
		default:
			if strings.HasPrefix(strings.TrimPrefix(h.Name, "./"), "blobs/") {
				blobs = true
			}
		}
	}
	return layout && index && blobs, nil
}

// unpackArchive extracts an OCI archive's files into dir (blobs and JSON only).
func unpackArchive(p, dir string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading OCI archive: %w", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if h.Typeflag != tar.TypeReg || name == "" {
			continue
		}
		if name != "index.json" && name != "oci-layout" && !strings.HasPrefix(name, "blobs/sha256/") {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
}

// blobPath checks a digest and returns where its blob is in an unpacked layout.
func blobPath(dir, digest string) (string, error) {
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexd) != 64 {
		return "", fmt.Errorf("unsupported digest %q", digest)
	}
	if _, err := hex.DecodeString(hexd); err != nil {
		return "", fmt.Errorf("invalid digest %q", digest)
	}
	return filepath.Join(dir, "blobs", "sha256", hexd), nil
}

func readJSONBlob(dir, digest string, v any) error {
	p, err := blobPath(dir, digest)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	if sum := sha256.Sum256(b); "sha256:"+hex.EncodeToString(sum[:]) != digest {
		return fmt.Errorf("blob %s: digest mismatch", digest)
	}
	return json.Unmarshal(b, v)
}

// pickManifest chooses the manifest for this host from an index's descriptors.
func pickManifest(ds []ociDescriptor) (ociDescriptor, error) {
	if len(ds) == 0 {
		return ociDescriptor{}, errors.New("image index lists no manifest")
	}
	if len(ds) == 1 {
		return ds[0], nil
	}
	for _, d := range ds {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			return d, nil
		}
	}
	return ociDescriptor{}, fmt.Errorf("no manifest for linux/%s in the image index", runtime.GOARCH)
}

// resolveManifest follows index.json (and nested indexes) to the image manifest.
func resolveManifest(dir string) (*ociManifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("OCI archive without index.json: %w", err)
	}
	var idx ociIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	ds := idx.Manifests
	for depth := 0; depth < 4; depth++ {
		d, err := pickManifest(ds)
		if err != nil {
			return nil, err
		}
		var m ociManifest
		if err := readJSONBlob(dir, d.Digest, &m); err != nil {
			return nil, err
		}
		if isIndex(d.MediaType) || isIndex(m.MediaType) || len(m.Manifests) > 0 {
			ds = m.Manifests
			continue
		}
		return &m, nil
	}
	return nil, errors.New("image index nested too deeply")
}

// squashImage extracts an OCI archive's layers, in order, into rootfs (an empty
// directory), shifting owners by idShift for unprivileged CTs, and returns the image
// config. Nothing is written outside rootfs, whatever the layers hold: every operation
// goes through an os.Root. warn receives what was skipped.
func squashImage(ctx context.Context, archive, workDir, rootfs string, idShift int, warn func(string, ...any)) (*ociImageConfig, error) {
	tmp, err := os.MkdirTemp(workDir, "oci-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := unpackArchive(archive, tmp); err != nil {
		return nil, err
	}
	m, err := resolveManifest(tmp)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Config ociImageConfig `json:"config"`
	}
	if err := readJSONBlob(tmp, m.Config.Digest, &cfg); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	for i, l := range m.Layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := blobPath(tmp, l.Digest)
		if err != nil {
			return nil, err
		}
		if err := applyLayer(root, p, l.MediaType, idShift, warn); err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
	}
	if err := root.Chown(".", idShift, idShift); err != nil {
		return nil, err
	}
	return &cfg.Config, nil
}

func layerReader(f *os.File, mediaType string) (io.Reader, func(), error) {
	switch {
	case strings.HasSuffix(mediaType, "+zstd") || strings.HasSuffix(mediaType, ".zstd"):
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	case strings.HasSuffix(mediaType, "+gzip") || strings.HasSuffix(mediaType, ".gzip") || strings.HasSuffix(mediaType, "tar.gzip"):
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case strings.HasSuffix(mediaType, ".tar") || mediaType == "":
		return f, func() {}, nil
	case strings.Contains(mediaType, "docker.image.rootfs.diff.tar.gzip"):
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	}
	return nil, nil, fmt.Errorf("unsupported layer media type %q", mediaType)
}

func applyLayer(root *os.Root, blob, mediaType string, shift int, warn func(string, ...any)) error {
	f, err := os.Open(blob)
	if err != nil {
		return err
	}
	defer f.Close()
	r, closeFn, err := layerReader(f, mediaType)
	if err != nil {
		return err
	}
	defer closeFn()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if name == "" {
			continue
		}
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" {
			dir = "."
		}
		// whiteouts: an opaque directory hides the lower layers' entries of dir, a
		// .wh.NAME file removes NAME
		if base == ".wh..wh..opq" {
			ents, err := readDirIn(root, dir)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			for _, e := range ents {
				if err := root.RemoveAll(path.Join(dir, e)); err != nil {
					return err
				}
			}
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			if err := root.RemoveAll(path.Join(dir, strings.TrimPrefix(base, ".wh."))); err != nil {
				return err
			}
			continue
		}
		if dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		uid, gid := h.Uid+shift, h.Gid+shift
		mode := fs.FileMode(h.Mode & 0o777)
		if h.Mode&0o4000 != 0 {
			mode |= fs.ModeSetuid
		}
		if h.Mode&0o2000 != 0 {
			mode |= fs.ModeSetgid
		}
		if h.Mode&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
		if h.Typeflag != tar.TypeDir {
			if fi, err := root.Lstat(name); err == nil && !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
				if err := root.RemoveAll(name); err != nil {
					return err
				}
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
				if err := root.RemoveAll(name); err != nil {
					return err
				}
			}
			if err := root.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			out, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, name); err != nil {
				return err
			}
			if err := root.Lchown(name, uid, gid); err != nil {
				return err
			}
			continue
		case tar.TypeLink:
			target := strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")
			if err := root.Link(target, name); err != nil {
				return err
			}
			continue
		default:
			warn("skipping %s: device nodes and fifos are not created by pvesim", name)
			continue
		}
		if err := root.Lchown(name, uid, gid); err != nil {
			return err
		}
		if err := root.Chmod(name, mode); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			mt := h.ModTime
			if mt.IsZero() {
				mt = time.Unix(0, 0)
			}
			root.Chtimes(name, mt, mt)
		}
	}
}

func readDirIn(root *os.Root, dir string) ([]string, error) {
	f, err := root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// shellQuote is PVE::Tools::shellquote (String::ShellQuote's rules), which cmd2string
// applies to each word of the image's Entrypoint+Cmd to make the CT's entrypoint.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("!%+,-./:=@^", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	q := "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	q = strings.TrimPrefix(q, "''")
	q = strings.TrimSuffix(q, "''")
	return q
}

func cmd2string(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
