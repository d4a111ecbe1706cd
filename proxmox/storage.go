package proxmox

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"

	"github.com/containerd/errdefs"
)

// Volume is one entry of a storage's content list.
type Volume struct {
	VolID   string `json:"volid"`
	Format  string `json:"format"`
	Content string `json:"content"`
	Size    uint64 `json:"size"`
	CTime   int64  `json:"ctime"`
}

// Contents lists the volumes of a storage holding the given content type ("vztmpl",
// "rootdir", ...; empty for all).
func (c *Client) Contents(ctx context.Context, storage, content string) ([]Volume, error) {
	if !storageIDRe.MatchString(storage) {
		return nil, fmt.Errorf("storage %q: %w", storage, errdefs.ErrInvalidArgument)
	}
	var p map[string]any
	if content != "" {
		p = map[string]any{"content": content}
	}
	var vols []Volume
	err := c.do(ctx, call{method: http.MethodGet, path: c.nodePath("/storage/" + storage + "/content"), params: p,
		need: "Datastore.Audit on /storage/" + storage}, &vols)
	return vols, err
}

// templateNameRe is what PVE takes as a vztmpl file name for an OCI archive.
var templateNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]{0,200}\.tar$`)

// TemplateVolID is the volume id a template file name gets in the template storage.
func (c *Client) TemplateVolID(filename string) string {
	return c.templateStorage + ":vztmpl/" + filename
}

// UploadTemplate uploads an OCI archive as vztmpl filename into the template storage and
// waits for PVE to move it into place. The archive is read from r from its start; on a
// connection that never opened it is sent again.
func (c *Client) UploadTemplate(ctx context.Context, filename string, r io.ReadSeeker, size int64) error {
	if !templateNameRe.MatchString(filename) {
		return fmt.Errorf("template file name %q: want letters, digits, '.', '_' or '-' ending in .tar: %w", filename, errdefs.ErrInvalidArgument)
	}
	k := call{method: http.MethodPost, path: c.nodePath("/storage/" + c.templateStorage + "/upload"),
		need: "Datastore.AllocateTemplate on /storage/" + c.templateStorage}
	bctx, cancel := c.bound(ctx)
	defer cancel()
	var last error
	for attempt := 0; attempt < c.retry.attempts; attempt++ {
		if attempt > 0 {
			if err := sleep(bctx, c.backoff(attempt)); err != nil {
				break
			}
		}
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("upload %s: %w", filename, err)
		}
		var id string
		last = c.upload(bctx, k.path, filename, r, size, &id)
		if last == nil {
			u, err := parseUPID(id)
			if err != nil {
				return &Error{Op: k.op(), Message: err.Error(), kind: errdefs.ErrUnknown}
			}
			return c.wait(ctx, u)
		}
		if bctx.Err() != nil || !c.retryable(k, last) {
			break
		}
	}
	return c.classify(bctx, k, last)
}

// upload runs go-proxmox's multipart upload, which takes no context, until ctx ends.
func (c *Client) upload(ctx context.Context, path, filename string, r io.Reader, size int64, out *string) error {
	done := make(chan error, 1)
	go func() {
		done <- c.api.UploadReader(path, map[string]string{"content": "vztmpl"}, filename, r, size, out)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The request goes on until the transport gives up; its result is dropped.
		return ctx.Err()
	}
}

// OCIRegistryPull has the node pull an image (reference with a tag) into the template storage
// as filename, and waits for it. PVE's pull takes no registry credentials.
func (c *Client) OCIRegistryPull(ctx context.Context, reference, filename string) error {
	p := map[string]any{"reference": reference}
	if filename != "" {
		if !templateNameRe.MatchString(filename) {
			return fmt.Errorf("template file name %q: %w", filename, errdefs.ErrInvalidArgument)
		}
		p["filename"] = filename
	}
	return c.task(ctx, call{method: http.MethodPost, path: c.nodePath("/storage/" + c.templateStorage + "/oci-registry-pull"), params: p,
		need: "Datastore.AllocateTemplate on /storage/" + c.templateStorage + " and Sys.AccessNetwork on /nodes/" + c.node})
}
