package proxmox

import (
	"context"
	"testing"
)

// The node list names the emulated node, and its storage list the two storages with their
// content types, as GET /nodes and GET /nodes/{node}/storage answer them.
func TestNodesAndStorages(t *testing.T) {
	s := startSim(t)
	c := newClient(t, s.config(t))
	ctx := context.Background()
	nodes, err := c.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Node != s.Node() || nodes[0].Status != "online" {
		t.Fatalf("nodes %+v", nodes)
	}
	sts, err := c.Storages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]StorageInfo{}
	for _, st := range sts {
		got[st.Storage] = st
	}
	for _, tc := range []struct {
		id, holds, lacks string
	}{{c.Storage(), "rootdir", "vztmpl"}, {c.TemplateStorage(), "vztmpl", "images"}} {
		st, ok := got[tc.id]
		if !ok || st.Active != 1 || st.Enabled != 1 || !st.Holds(tc.holds) || st.Holds(tc.lacks) {
			t.Errorf("storage %s: %+v (all: %+v)", tc.id, st, sts)
		}
	}
}
