package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	goprox "github.com/luthermonson/go-proxmox"
)

// Version is what /version answers.
type Version struct {
	Version string `json:"version"`
	Release string `json:"release"`
	RepoID  string `json:"repoid"`
}

// Version asks the node for its PVE version; it is the cheapest authenticated call, so it
// also checks the token.
func (c *Client) Version(ctx context.Context) (*Version, error) {
	var v Version
	if err := c.do(ctx, call{method: http.MethodGet, path: "/version"}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// NextID asks the cluster for a free VMID. PVE answers it as a string.
func (c *Client) NextID(ctx context.Context) (int, error) {
	var raw json.RawMessage
	k := call{method: http.MethodGet, path: "/cluster/nextid"}
	if err := c.do(ctx, k, &raw); err != nil {
		return 0, err
	}
	id, err := strconv.Atoi(strings.Trim(string(raw), `"`))
	if err != nil {
		return 0, &Error{Op: k.op(), Message: fmt.Sprintf("answer %s is not a VMID", raw), kind: errdefs.ErrUnknown}
	}
	return id, nil
}

// CT is one entry of the node's CT list.
type CT struct {
	VMID   goprox.StringOrUint64 `json:"vmid"`
	Name   string                `json:"name"`
	Status string                `json:"status"`
	Tags   string                `json:"tags"`
	Lock   string                `json:"lock"`
}

// TagList splits PVE's tag string (separated by ';', ',' or spaces).
func (ct *CT) TagList() []string { return splitTags(ct.Tags) }

func splitTags(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
}

// CTs lists the node's CTs (only those the token may audit).
func (c *Client) CTs(ctx context.Context) ([]CT, error) {
	var cts []CT
	err := c.do(ctx, call{method: http.MethodGet, path: c.nodePath("/lxc"), need: "VM.Audit on /vms/<vmid>"}, &cts)
	return cts, err
}

// CTStatus is a CT's status/current. Pid is the host pid of the CT's init while it runs.
type CTStatus struct {
	VMID      goprox.StringOrUint64 `json:"vmid"`
	Name      string                `json:"name"`
	Status    string                `json:"status"`
	Pid       goprox.StringOrUint64 `json:"pid"`
	Lock      string                `json:"lock"`
	Tags      string                `json:"tags"`
	CPUs      float64               `json:"cpus"`
	CPU       float64               `json:"cpu"`
	Mem       uint64                `json:"mem"`
	MaxMem    uint64                `json:"maxmem"`
	Swap      uint64                `json:"swap"`
	MaxSwap   uint64                `json:"maxswap"`
	Disk      uint64                `json:"disk"`
	MaxDisk   uint64                `json:"maxdisk"`
	Uptime    uint64                `json:"uptime"`
	NetIn     uint64                `json:"netin"`
	NetOut    uint64                `json:"netout"`
	DiskRead  uint64                `json:"diskread"`
	DiskWrite uint64                `json:"diskwrite"`
}

// Running says whether the CT is running.
func (s *CTStatus) Running() bool { return s.Status == "running" }

// CTStatus reads status/current, which go-proxmox has no type for. A missing CT is
// NotFound.
func (c *Client) CTStatus(ctx context.Context, vmid int) (*CTStatus, error) {
	var st CTStatus
	if err := c.do(ctx, c.ctCall(http.MethodGet, vmid, "/status/current", nil, "VM.Audit"), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// CTConfig reads a CT's configuration (the current one, not a snapshot's).
func (c *Client) CTConfig(ctx context.Context, vmid int) (map[string]any, error) {
	var cfg map[string]any
	if err := c.do(ctx, c.ctCall(http.MethodGet, vmid, "/config", nil, "VM.Audit"), &cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// SetCTConfig changes CT options; remove lists keys to delete. PVE applies it at once.
func (c *Client) SetCTConfig(ctx context.Context, vmid int, set map[string]any, remove ...string) error {
	p := make(map[string]any, len(set)+1)
	for k, v := range set {
		p[k] = v
	}
	if len(remove) > 0 {
		p["delete"] = strings.Join(remove, ",")
	}
	return c.do(ctx, c.ctCall(http.MethodPut, vmid, "/config", p, "VM.Config.Options/Memory/CPU"), nil)
}

// CreateCT creates CT vmid from opts (PVE's create keys: ostemplate, hostname, rootfs,
// memory, ...) and waits for the task. A taken VMID is AlreadyExists.
func (c *Client) CreateCT(ctx context.Context, vmid int, opts map[string]any) error {
	p := make(map[string]any, len(opts)+1)
	for k, v := range opts {
		p[k] = v
	}
	p["vmid"] = vmid
	return c.task(ctx, call{method: http.MethodPost, path: c.nodePath("/lxc"), params: p,
		need: fmt.Sprintf("VM.Allocate on /vms/%d and Datastore.AllocateSpace on /storage/%s", vmid, c.storage)})
}

// StartCT starts a CT and waits until PVE says it runs.
func (c *Client) StartCT(ctx context.Context, vmid int) error {
	return c.task(ctx, c.ctCall(http.MethodPost, vmid, "/status/start", nil, "VM.PowerMgmt"))
}

// StopCT stops a CT at once (PVE's "stop", a kill of its init after lxc-stop's timeout).
func (c *Client) StopCT(ctx context.Context, vmid int) error {
	return c.task(ctx, c.ctCall(http.MethodPost, vmid, "/status/stop", nil, "VM.PowerMgmt"))
}

// ShutdownCT asks the CT's init to stop, waiting up to timeout seconds; forceStop stops it
// after that.
func (c *Client) ShutdownCT(ctx context.Context, vmid, timeout int, forceStop bool) error {
	return c.task(ctx, c.ctCall(http.MethodPost, vmid, "/status/shutdown",
		map[string]any{"timeout": timeout, "forceStop": forceStop}, "VM.PowerMgmt"))
}

// SuspendCT freezes a running CT.
func (c *Client) SuspendCT(ctx context.Context, vmid int) error {
	return c.task(ctx, c.ctCall(http.MethodPost, vmid, "/status/suspend", nil, "VM.PowerMgmt"))
}

// ResumeCT thaws a suspended CT.
func (c *Client) ResumeCT(ctx context.Context, vmid int) error {
	return c.task(ctx, c.ctCall(http.MethodPost, vmid, "/status/resume", nil, "VM.PowerMgmt"))
}

// DeleteCT destroys a CT with its volumes (force stops a running one first). A CT that is
// already gone is not an error: deleting is what callers retry after a crash.
func (c *Client) DeleteCT(ctx context.Context, vmid int, force bool) error {
	p := map[string]any{"purge": true, "destroy-unreferenced-disks": true}
	if force {
		p["force"] = true
	}
	err := c.task(ctx, c.ctCall(http.MethodDelete, vmid, "", p, "VM.Allocate"))
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// Snapshot is one entry of a CT's snapshot list ("current" left out).
type Snapshot struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Parent      string `json:"parent"`
	SnapTime    int64  `json:"snaptime"`
}

// snapNameRe is PVE's pve-configid format; "current" and "vzdump" are PVE's own names.
var snapNameRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_\-]{1,39}$`)

// ValidSnapshotName checks a snapshot name before it goes into a path or request.
func ValidSnapshotName(name string) error {
	if !snapNameRe.MatchString(name) || name == "current" || name == "vzdump" {
		return fmt.Errorf("snapshot name %q: want a letter then 1-39 letters, digits, '-' or '_', not current or vzdump: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// CreateSnapshot snapshots a CT. Storage without snapshots is FailedPrecondition with
// PVE's reason.
func (c *Client) CreateSnapshot(ctx context.Context, vmid int, name, description string) error {
	if err := ValidSnapshotName(name); err != nil {
		return err
	}
	p := map[string]any{"snapname": name}
	if description != "" {
		p["description"] = description
	}
	return c.task(ctx, c.ctCall(http.MethodPost, vmid, "/snapshot", p, "VM.Snapshot"))
}

// Snapshots lists a CT's snapshots, without PVE's "current" entry.
func (c *Client) Snapshots(ctx context.Context, vmid int) ([]Snapshot, error) {
	var all []Snapshot
	if err := c.do(ctx, c.ctCall(http.MethodGet, vmid, "/snapshot", nil, "VM.Audit"), &all); err != nil {
		return nil, err
	}
	snaps := all[:0]
	for _, s := range all {
		if s.Name != "current" {
			snaps = append(snaps, s)
		}
	}
	return snaps, nil
}

// DeleteSnapshot removes a snapshot; a missing one is not an error.
func (c *Client) DeleteSnapshot(ctx context.Context, vmid int, name string) error {
	if err := ValidSnapshotName(name); err != nil {
		return err
	}
	err := c.task(ctx, c.ctCall(http.MethodDelete, vmid, "/snapshot/"+name, nil, "VM.Snapshot"))
	if errdefs.IsNotFound(err) {
		var e *Error
		// The CT itself being gone is the caller's business; a missing snapshot is done.
		if errors.As(err, &e) && strings.Contains(e.Message, "snapshot") {
			return nil
		}
	}
	return err
}

// RollbackSnapshot rolls a CT back to a snapshot.
func (c *Client) RollbackSnapshot(ctx context.Context, vmid int, name string, start bool) error {
	if err := ValidSnapshotName(name); err != nil {
		return err
	}
	return c.task(ctx, c.ctCall(http.MethodPost, vmid, "/snapshot/"+name+"/rollback", map[string]any{"start": start}, "VM.Snapshot.Rollback"))
}

// CloneOptions are the choices of CloneCT.
type CloneOptions struct {
	// Snapshot is the snapshot to clone from; empty clones the current state.
	Snapshot string
	Hostname string
	// Description is the new CT's notes.
	Description string
	// Storage is the target storage of a full clone; empty keeps the source's.
	Storage string
}

// CloneCT makes CT newid a full copy of CT vmid (or of its snapshot) and waits for it.
func (c *Client) CloneCT(ctx context.Context, vmid, newid int, o CloneOptions) error {
	p := map[string]any{"newid": newid, "full": true}
	if o.Snapshot != "" {
		if err := ValidSnapshotName(o.Snapshot); err != nil {
			return err
		}
		p["snapname"] = o.Snapshot
	}
	if o.Hostname != "" {
		p["hostname"] = o.Hostname
	}
	if o.Description != "" {
		p["description"] = o.Description
	}
	if o.Storage != "" {
		p["storage"] = o.Storage
	}
	return c.task(ctx, call{method: http.MethodPost, path: c.ctPath(vmid, "/clone"), params: p,
		need: fmt.Sprintf("VM.Clone on /vms/%d, VM.Allocate on /vms/%d and Datastore.AllocateSpace on the storage", vmid, newid)})
}

func (c *Client) nodePath(rest string) string { return "/nodes/" + c.node + rest }

func (c *Client) ctPath(vmid int, rest string) string {
	return fmt.Sprintf("/nodes/%s/lxc/%d%s", c.node, vmid, rest)
}

func (c *Client) ctCall(method string, vmid int, rest string, params map[string]any, priv string) call {
	return call{method: method, path: c.ctPath(vmid, rest), params: params, need: fmt.Sprintf("%s on /vms/%d", priv, vmid)}
}
