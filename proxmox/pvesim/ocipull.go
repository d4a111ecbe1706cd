package pvesim

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// This file pulls an image from a registry into an OCI archive, as PVE's
// oci-registry-pull does with `skopeo copy docker://REF oci-archive:FILE`: anonymously
// (PVE has no registry credentials either), over HTTPS, or plain HTTP for a registry on
// loopback (the registry a test runs). Docker v2 manifests are kept as they are, not
// converted to OCI ones as skopeo would.

type imageRef struct {
	host, repo, tag string
}

func parseRef(ref string) (imageRef, error) {
	name, tag, ok := cutLast(ref, ":")
	if !ok || strings.Contains(tag, "/") {
		return imageRef{}, fmt.Errorf("reference '%s' has no tag", ref)
	}
	host, repo, ok := strings.Cut(name, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		host, repo = "registry-1.docker.io", name
		if !strings.Contains(repo, "/") {
			repo = "library/" + repo
		}
	}
	if host == "docker.io" {
		host = "registry-1.docker.io"
	}
	return imageRef{host: host, repo: repo, tag: tag}, nil
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func (r imageRef) base() string {
	h, _, err := net.SplitHostPort(r.host)
	if err != nil {
		h = r.host
	}
	if h == "localhost" || h == "127.0.0.1" || h == "::1" {
		return "http://" + r.host + "/v2/" + r.repo
	}
	return "https://" + r.host + "/v2/" + r.repo
}

var manifestAccept = strings.Join([]string{mtOCIIndex, mtOCIManifest, mtDockerList, mtDockerManifest}, ", ")

// pullOCIArchive writes the image ref as an OCI archive to out.
func pullOCIArchive(ctx context.Context, ref, out string, t *task) error {
	ir, err := parseRef(ref)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Minute}
	get := func(url, accept string) ([]byte, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, "", err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, "", fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
		return b, resp.Header.Get("Content-Type"), err
	}
	blobs := map[string][]byte{}
	verified := func(digest string, b []byte) error {
		sum := sha256.Sum256(b)
		if "sha256:"+hex.EncodeToString(sum[:]) != digest {
			return fmt.Errorf("blob %s: digest mismatch", digest)
		}
		blobs[digest] = b
		return nil
	}
	body, mt, err := get(ir.base()+"/manifests/"+ir.tag, manifestAccept)
	if err != nil {
		return fmt.Errorf("initializing source docker://%s: %v", ref, err)
	}
	sum := sha256.Sum256(body)
	top := ociDescriptor{MediaType: mt, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(body))}
	blobs[top.Digest] = body
	var m ociManifest
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("manifest: %v", err)
	}
	if m.MediaType != "" {
		top.MediaType = m.MediaType
	}
	// an index: take the manifest for this host, and store only it
	if isIndex(top.MediaType) || len(m.Manifests) > 0 {
		d, err := pickManifest(m.Manifests)
		if err != nil {
			return err
		}
		delete(blobs, top.Digest)
		b, mt, err := get(ir.base()+"/manifests/"+d.Digest, manifestAccept)
		if err != nil {
			return err
		}
		if err := verified(d.Digest, b); err != nil {
			return err
		}
		m = ociManifest{}
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("manifest: %v", err)
		}
		top = ociDescriptor{MediaType: d.MediaType, Digest: d.Digest, Size: int64(len(b))}
		if top.MediaType == "" {
			top.MediaType = mt
		}
	}
	for _, d := range append([]ociDescriptor{m.Config}, m.Layers...) {
		t.logf("Copying blob %s", d.Digest)
		b, _, err := get(ir.base()+"/blobs/"+d.Digest, "")
		if err != nil {
			return err
		}
		if err := verified(d.Digest, b); err != nil {
			return err
		}
	}
	top.Annotations = map[string]string{"org.opencontainers.image.ref.name": ir.tag}
	index, _ := json.Marshal(ociIndex{SchemaVersion: 2, MediaType: mtOCIIndex, Manifests: []ociDescriptor{top}})
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	write := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	err = write("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	if err == nil {
		err = write("index.json", index)
	}
	if err == nil {
		err = tw.WriteHeader(&tar.Header{Name: "blobs/", Mode: 0o755, Typeflag: tar.TypeDir})
	}
	if err == nil {
		err = tw.WriteHeader(&tar.Header{Name: "blobs/sha256/", Mode: 0o755, Typeflag: tar.TypeDir})
	}
	for _, d := range sortedKeys(blobs) {
		if err != nil {
			break
		}
		err = write("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), blobs[d])
	}
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing OCI archive: %v", err)
	}
	t.logf("Writing manifest to image destination")
	return nil
}
