package proxmoxlxc

import goruntime "runtime"

// goarch is the OCI architecture of the node (PVE runs CTs of its own architecture).
func goarch() string { return goruntime.GOARCH }
