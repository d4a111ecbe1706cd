package proxmox

import (
	"context"
	"net/http"
	"strings"
)

// NodeInfo is one row of GET /nodes: a node of the cluster and whether it is online.
type NodeInfo struct {
	Node   string `json:"node"`
	Status string `json:"status"`
}

// Nodes lists the cluster's nodes (a standalone node lists itself).
func (c *Client) Nodes(ctx context.Context) ([]NodeInfo, error) {
	var nodes []NodeInfo
	err := c.do(ctx, call{method: http.MethodGet, path: "/nodes"}, &nodes)
	return nodes, err
}

// StorageInfo is one row of GET /nodes/{node}/storage. PVE answers the flags as 0/1.
type StorageInfo struct {
	Storage string `json:"storage"`
	Type    string `json:"type"`
	// Content is the comma-separated content types the storage holds (rootdir, vztmpl, ...).
	Content string `json:"content"`
	Active  int    `json:"active"`
	Enabled int    `json:"enabled"`
}

// Holds says whether the storage takes the given content type.
func (s *StorageInfo) Holds(content string) bool {
	for _, c := range strings.Split(s.Content, ",") {
		if strings.TrimSpace(c) == content {
			return true
		}
	}
	return false
}

// Storages lists the storages of the client's node that the token may see (PVE leaves out
// those it has neither Datastore.Audit nor Datastore.AllocateSpace on).
func (c *Client) Storages(ctx context.Context) ([]StorageInfo, error) {
	var sts []StorageInfo
	err := c.do(ctx, call{method: http.MethodGet, path: c.nodePath("/storage"),
		need: "Datastore.Audit on /storage/<storage>"}, &sts)
	return sts, err
}
