package pvesim

import (
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file serves the node- and cluster-wide endpoints: /version, /cluster/nextid,
// /cluster/resources, /nodes, /nodes/{node}/status.

// Version is the PVE version the emulator answers in /version.
const (
	Version = "9.1.1"
	Release = "9.1"
	RepoID  = "42d5b0e4"
)

func (s *Server) routes() {
	s.route("GET", "/version", s.version)
	s.route("GET", "/cluster/nextid", s.nextID)
	s.route("GET", "/cluster/resources", s.resources)
	s.route("GET", "/cluster/status", s.clusterStatus)
	s.route("GET", "/nodes", s.nodeList)
	s.route("GET", "/nodes/{node}/status", s.nodeStatus)
	s.routesStorage()
	s.routesTasks()
	s.routesLXC()
	s.routesQemu()
}

func (s *Server) version(r *request) (any, error) {
	return map[string]any{"version": Version, "release": Release, "repoid": RepoID}, nil
}

// nextID answers a string, as PVE does, though the schema says integer.
func (s *Server) nextID(r *request) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.has("vmid") {
		vmid := r.intOr("vmid", 0)
		if s.vmidTaken(vmid) {
			return nil, paramError(map[string]string{"vmid": "VM " + strconv.Itoa(vmid) + " already exists"})
		}
		return r.str("vmid"), nil
	}
	for id := 100; id < 1000000000; id++ {
		if !s.vmidTaken(id) {
			return strconv.Itoa(id), nil
		}
	}
	return nil, errorf(http.StatusInternalServerError, "unable to get any free VMID in range [100, 999999999]")
}

// clusterStatus is a standalone node's: the node alone, no cluster entry.
func (s *Server) clusterStatus(r *request) (any, error) {
	host, _, _ := net.SplitHostPort(s.Addr())
	return []map[string]any{{
		"type": "node", "id": "node/" + s.cfg.Node, "name": s.cfg.Node, "nodeid": 0,
		"ip": host, "local": 1, "online": 1, "level": "",
	}}, nil
}

func (s *Server) nodeRow() map[string]any {
	var si syscall.Sysinfo_t
	syscall.Sysinfo(&si)
	unit := uint64(si.Unit)
	total := si.Totalram * unit
	return map[string]any{
		"id": "node/" + s.cfg.Node, "type": "node", "node": s.cfg.Node, "status": "online",
		"maxcpu": runtime.NumCPU(), "cpu": 0, "maxmem": total, "mem": total - si.Freeram*unit,
		"uptime": si.Uptime, "level": "",
	}
}

func (s *Server) nodeList(r *request) (any, error) {
	return []map[string]any{s.nodeRow()}, nil
}

func (s *Server) resources(r *request) (any, error) {
	typ := r.str("type")
	out := []map[string]any{}
	if typ == "" || typ == "node" {
		out = append(out, s.nodeRow())
	}
	if typ == "" || typ == "storage" {
		for _, id := range sortedKeys(s.storages) {
			st := s.storages[id]
			row := st.status()
			row["id"] = "storage/" + s.cfg.Node + "/" + id
			row["type"] = "storage"
			row["storage"] = id
			row["node"] = s.cfg.Node
			row["status"] = "available"
			row["plugintype"] = st.typ
			row["maxdisk"] = row["total"]
			row["disk"] = row["used"]
			out = append(out, row)
		}
	}
	if typ == "" || typ == "vm" {
		s.mu.Lock()
		cts := make([]*ct, 0, len(s.cts))
		for _, c := range s.cts {
			cts = append(cts, c)
		}
		s.mu.Unlock()
		sort.Slice(cts, func(i, j int) bool { return cts[i].vmid < cts[j].vmid })
		for _, c := range cts {
			row := s.ctSummary(c)
			row["id"] = "lxc/" + strconv.Itoa(c.vmid)
			row["node"] = s.cfg.Node
			row["maxcpu"] = row["cpus"]
			delete(row, "cpus")
			delete(row, "pid")
			if _, ok := row["template"]; !ok {
				row["template"] = 0
			}
			out = append(out, row)
		}
		out = append(out, s.qemuResources()...)
	}
	return out, nil
}

func (s *Server) nodeStatus(r *request) (any, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	var si syscall.Sysinfo_t
	syscall.Sysinfo(&si)
	unit := uint64(si.Unit)
	var fs syscall.Statfs_t
	syscall.Statfs(s.cfg.Dir, &fs)
	bs := uint64(fs.Bsize)
	kernel := "Linux"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel += " " + strings.TrimSpace(string(b))
	}
	load := func(v uint64) string { return strconv.FormatFloat(float64(v)/65536, 'f', 2, 64) }
	return map[string]any{
		"uptime": si.Uptime,
		"cpu":    0,
		"wait":   0,
		"idle":   0,
		"cpuinfo": map[string]any{
			"cpus": runtime.NumCPU(), "cores": runtime.NumCPU(), "sockets": 1,
			"model": "pvesim emulated CPU", "mhz": "0", "hvm": "1", "flags": "",
		},
		"memory":     map[string]any{"total": si.Totalram * unit, "free": si.Freeram * unit, "used": (si.Totalram - si.Freeram) * unit, "available": si.Freeram * unit},
		"swap":       map[string]any{"total": si.Totalswap * unit, "free": si.Freeswap * unit, "used": (si.Totalswap - si.Freeswap) * unit},
		"rootfs":     map[string]any{"total": fs.Blocks * bs, "free": fs.Bfree * bs, "avail": fs.Bavail * bs, "used": (fs.Blocks - fs.Bfree) * bs},
		"loadavg":    []string{load(si.Loads[0]), load(si.Loads[1]), load(si.Loads[2])},
		"kversion":   kernel,
		"pveversion": "pve-manager/" + Version + "/" + RepoID,
		"ksm":        map[string]any{"shared": 0},
		"boot-info":  map[string]any{"mode": "legacy-bios"},
		"time":       time.Now().Unix(),
	}, nil
}
