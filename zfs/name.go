package zfs

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// Name is a dataset or snapshot name split into its parts: Parent/Leaf@Snapshot. Names
// that come from outside (a checkpoint descriptor) are judged by these parts, compared
// whole, never by string prefixes ("tank/lxcri-other" begins with "tank/lxcri").
type Name struct {
	// Parent is the dataset above Leaf ("" for a pool).
	Parent string
	// Leaf is the last component of the dataset.
	Leaf string
	// Snapshot is the part after "@" ("" for a dataset).
	Snapshot string
}

// ParseName checks name against ZFS's name grammar (as the Store methods do) and splits
// it. snapshot says whether a snapshot name (dataset@snap) or a dataset name is wanted.
// A bad name is InvalidArgument.
func ParseName(name string, snapshot bool) (Name, error) {
	if err := checkName(name, snapshot); err != nil {
		return Name{}, fmt.Errorf("%q: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	ds, snap, _ := strings.Cut(name, "@")
	n := Name{Leaf: ds, Snapshot: snap}
	if i := strings.LastIndexByte(ds, '/'); i >= 0 {
		n.Parent, n.Leaf = ds[:i], ds[i+1:]
	}
	return n, nil
}

// Dataset is the dataset name: the whole name without the snapshot.
func (n Name) Dataset() string {
	if n.Parent == "" {
		return n.Leaf
	}
	return n.Parent + "/" + n.Leaf
}

// ContainerLeaf is the last component of the dataset ContainerDataset(id) names.
func ContainerLeaf(id string) string { return containerPrefix + id }
