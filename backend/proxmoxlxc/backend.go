// Package proxmoxlxc is the proxmox-lxc backend: each containerd task is a Proxmox VE CT on
// the node the shim runs on, made and destroyed through the PVE API (so it shows in the
// PVE UI with its config and snapshots), its root made from the task's image the PVE-native
// way (an OCI archive in the node's template storage). The task's processes run in the CT
// through the node's own LXC, as `pct exec` does (the API has no exec): that is how they
// get containerd's stdio and report their exit status.
//
// The CT's init is lxcri-pause, a static binary the backend adds to each template; the
// task's init process is attached to the CT next to it. So the CT keeps running between
// the processes containerd starts, and when the task's init exits the CT is stopped.
package proxmoxlxc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/lxcri/lxcri/backend/lxcstart"
	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/proxmox/taskguest"
	"github.com/lxcri/lxcri/runtime"
)

// Name is the backend's configuration name.
const Name = "proxmox-lxc"

// PauseBinary is the CT init's file name, looked up beside the shim binary.
const PauseBinary = "lxcri-pause"

// maxCreateAttempts bounds how often a VMID PVE offered is found taken by another
// creator and a new one is asked for.
const maxCreateAttempts = 5

type backend struct {
	api     *proxmox.Client
	pause   string // path of lxcri-pause
	helper  string // path of lxcri-start
	lxcPath string

	// templates serializes the making of one template (by file name), so that the
	// containers of a pod do not upload the same image at once.
	tmu       sync.Mutex
	templates map[string]*sync.Mutex
	// cache remembers which template a root filesystem became; without a directory
	// every Create builds the template to learn its name.
	cache templateCache
}

// New makes the backend from the [proxmox] section of cfg. The task's processes run in
// their CT through lxcri-start's exec mode (liblxc's attach in a single-threaded process
// of its own, the lxc backend's helper), found beside the shim unless [lxc] helper names
// it.
func New(ctx context.Context, cfg *runtime.Config) (runtime.Backend, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	helper := cfg.LXC.Helper
	if helper == "" {
		helper = filepath.Join(filepath.Dir(exe), lxcstart.Name)
	}
	b, err := newBackend(ctx, &cfg.Proxmox, filepath.Join(filepath.Dir(exe), PauseBinary), helper)
	if err != nil {
		return nil, err
	}
	b.cache = templateCache{dir: filepath.Join(cfg.StateDir, Name, "templates")}
	return b, nil
}

func newBackend(ctx context.Context, cfg *runtime.ProxmoxConfig, pause, helper string) (*backend, error) {
	api, err := proxmox.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(pause); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: the CT init %s is missing (install it beside the shim): %w", Name, pause, errdefs.ErrFailedPrecondition)
	}
	if !filepath.IsAbs(helper) {
		return nil, fmt.Errorf("%s: [lxc] helper %q is not an absolute path: %w", Name, helper, errdefs.ErrInvalidArgument)
	}
	if !lxcstart.Executable(helper) {
		return nil, fmt.Errorf("%s: %s, which runs the task's processes in its CT, is missing or not executable (install it beside the shim): %w", Name, helper, errdefs.ErrFailedPrecondition)
	}
	return &backend{api: api, pause: pause, helper: helper, lxcPath: api.LXCPath(), templates: map[string]*sync.Mutex{}}, nil
}

func (b *backend) Name() string { return Name }

// Needs: the shim mounts the task's root here (it becomes the CT's template); the task's
// processes are the shim's children through LXC's attach, so their pids are this host's;
// checkpoints are PVE snapshots.
func (b *backend) Needs() runtime.Needs {
	return runtime.Needs{HostRootfs: true, HostPids: true, OwnsCheckpoints: true}
}

func (b *backend) Create(ctx context.Context, req *runtime.CreateRequest) (_ runtime.Container, retErr error) {
	ct, err := Translate(req.Spec)
	if err != nil {
		return nil, err
	}
	tag := taskguest.IDTag(req.Namespace, req.ID)
	if ids, err := findCT(ctx, b.api, tag); err != nil {
		return nil, err
	} else if len(ids) > 0 {
		return nil, fmt.Errorf("%s: CT %d already carries the tag %s of task %s/%s (left by a shim that died? `ctr task delete` removes it): %w", Name, ids[0], tag, req.Namespace, req.ID, errdefs.ErrAlreadyExists)
	}
	if req.Checkpoint != "" {
		return b.restore(ctx, req, ct, tag)
	}
	if req.Rootfs == "" {
		return nil, fmt.Errorf("%s: no root filesystem to make the CT from: %w", Name, errdefs.ErrInvalidArgument)
	}
	volid, rootSize, err := b.ensureTemplate(ctx, req.Rootfs, req.Mounts, req.StateDir)
	if err != nil {
		return nil, err
	}
	opts := map[string]any{
		"ostemplate":   volid,
		"rootfs":       fmt.Sprintf("%s:%d", b.api.Storage(), rootSize),
		"unprivileged": true,
		"tags":         taskguest.OwnerTag + ";" + tag,
		"description":  kind.Description(req.Namespace, req.ID),
	}
	for k, v := range ct.Options {
		opts[k] = v
	}
	vmid, err := b.createCT(ctx, req.Bundle, tag, func(vmid int) error { return b.api.CreateCT(ctx, vmid, opts) })
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			if err := b.api.DeleteCT(context.WithoutCancel(ctx), vmid, true); err != nil {
				log.G(ctx).WithError(err).WithField("vmid", vmid).Error("proxmox-lxc: remove the CT of a failed create")
			} else {
				kind.RemoveRecord(req.Bundle)
			}
		}
	}()
	return newContainer(b, req, vmid, ct), nil
}

// createCT asks PVE for a free VMID and creates the CT under it; when another creator took
// the VMID first, PVE answers AlreadyExists and the next free one is tried. The VMID is
// recorded in the bundle before each attempt.
func (b *backend) createCT(ctx context.Context, bundle, tag string, create func(vmid int) error) (int, error) {
	var last error
	for attempt := 0; attempt < maxCreateAttempts; attempt++ {
		vmid, err := b.api.NextID(ctx)
		if err != nil {
			return 0, err
		}
		if err := kind.WriteRecord(bundle, taskguest.Record{Node: b.api.Node(), VMID: vmid, Tag: tag}); err != nil {
			return 0, fmt.Errorf("%s: record the VMID: %w", Name, err)
		}
		err = create(vmid)
		if err == nil {
			return vmid, nil
		}
		last = err
		if !errdefs.IsAlreadyExists(err) {
			// A failed create task may leave a half-made CT: it is ours by its tag.
			b.removeTagged(context.WithoutCancel(ctx), vmid, tag)
			kind.RemoveRecord(bundle)
			return 0, err
		}
	}
	kind.RemoveRecord(bundle)
	return 0, fmt.Errorf("%s: no free VMID after %d attempts: %w", Name, maxCreateAttempts, last)
}

// removeTagged destroys CT vmid if it carries tag, and says nothing else: the caller has a
// better error to return.
func (b *backend) removeTagged(ctx context.Context, vmid int, tag string) {
	if ok, err := hasTag(ctx, b.api, vmid, tag); err != nil || !ok {
		return
	}
	if err := b.api.DeleteCT(ctx, vmid, true); err != nil {
		log.G(ctx).WithError(err).WithField("vmid", vmid).Error("proxmox-lxc: remove a half-made CT")
	}
}

// ensureTemplate returns the volume id of the template of the task's root filesystem and
// the root disk size in GiB, making the template and putting it into the template storage
// unless one with the same digest is there already. When the rootfs mounts pin its content
// down and this host made (or found) its template before, the cache names the template
// without building the archive again.
func (b *backend) ensureTemplate(ctx context.Context, rootfs string, mounts []*types.Mount, scratch string) (string, int, error) {
	key, keyed := "", false
	if b.cache.dir != "" {
		key, keyed = contentKey(mounts, b.pause)
	}
	if keyed {
		if t, ok := b.cache.get(key); ok {
			if found, err := b.hasTemplate(ctx, t.VolID); err != nil {
				return "", 0, err
			} else if found {
				return t.VolID, t.GiB, nil
			}
		}
	}
	volid, gib, err := b.makeTemplate(ctx, rootfs, scratch)
	if err != nil {
		return "", 0, err
	}
	if keyed {
		if err := b.cache.put(key, cachedTemplate{VolID: volid, GiB: gib}); err != nil {
			log.G(ctx).WithError(err).Warn("proxmox-lxc: remember the template of a root filesystem")
		}
	}
	return volid, gib, nil
}

// makeTemplate builds the OCI archive of the root filesystem and uploads it unless the
// template storage holds one with the same digest.
func (b *backend) makeTemplate(ctx context.Context, rootfs, scratch string) (string, int, error) {
	pause, err := os.ReadFile(b.pause)
	if err != nil {
		return "", 0, fmt.Errorf("%s: read the CT init: %w", Name, err)
	}
	f, err := os.CreateTemp(scratch, "template-*.tar")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	dg, err := buildTemplate(ctx, f, templateSpec{Rootfs: rootfs, Pause: pause}, scratch)
	if err != nil {
		return "", 0, fmt.Errorf("%s: make the CT template: %w", Name, err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", 0, err
	}
	// Squashed and unpacked, the root takes a few times the compressed archive; PVE sizes
	// disks in whole GiB.
	gib := int(size*4/(1<<30)) + 1
	name := "lxcri-" + dg.Encoded()[:32] + ".tar"
	volid := b.api.TemplateVolID(name)

	mu := b.templateLock(name)
	mu.Lock()
	defer mu.Unlock()
	if found, err := b.hasTemplate(ctx, volid); err != nil {
		return "", 0, err
	} else if found {
		return volid, gib, nil
	}
	if err := b.api.UploadTemplate(ctx, name, f, size); err != nil {
		return "", 0, err
	}
	return volid, gib, nil
}

// hasTemplate says whether the template storage holds volid.
func (b *backend) hasTemplate(ctx context.Context, volid string) (bool, error) {
	vols, err := b.api.Contents(ctx, b.api.TemplateStorage(), "vztmpl")
	if err != nil {
		return false, err
	}
	for _, v := range vols {
		if v.VolID == volid {
			return true, nil
		}
	}
	return false, nil
}

func (b *backend) templateLock(name string) *sync.Mutex {
	b.tmu.Lock()
	defer b.tmu.Unlock()
	mu, ok := b.templates[name]
	if !ok {
		mu = &sync.Mutex{}
		b.templates[name] = mu
	}
	return mu
}

// Cleanup destroys the CT of a task whose shim died: the one in the bundle's record if it
// still carries the task's tag (a VMID may have been reused since), and any other CT with
// the tag.
func (b *backend) Cleanup(ctx context.Context, req *runtime.CleanupRequest) error {
	tag := taskguest.IDTag(req.Namespace, req.ID)
	var errs []error
	if r, err := kind.ReadRecord(req.Bundle); err == nil && r.VMID > 0 {
		if ok, err := hasTag(ctx, b.api, r.VMID, tag); err != nil {
			errs = append(errs, err)
		} else if ok {
			if err := b.api.DeleteCT(ctx, r.VMID, true); err != nil {
				errs = append(errs, err)
			}
		}
	} else if err != nil && !os.IsNotExist(err) {
		log.G(ctx).WithError(err).Warn("proxmox-lxc: unreadable VMID record; looking the CT up by its tag")
	}
	ids, err := findCT(ctx, b.api, tag)
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range ids {
		if err := b.api.DeleteCT(ctx, id, true); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		kind.RemoveRecord(req.Bundle)
	}
	return errors.Join(errs...)
}

// ctName is the CT's LXC container name on the node: its VMID.
func ctName(vmid int) string { return fmt.Sprint(vmid) }
