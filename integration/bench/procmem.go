//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mem is the memory of a set of processes, from /proc/<pid>/smaps_rollup, in bytes.
type Mem struct {
	RSS, PSS uint64
	Procs    int
}

func (m *Mem) add(o Mem) { m.RSS += o.RSS; m.PSS += o.PSS; m.Procs += o.Procs }

// smapsRollup reads Rss and Pss of one process.
func smapsRollup(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Mem{}, err
	}
	m := Mem{Procs: 1}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[2] != "kB" {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			m.RSS = v * 1024
		case "Pss:":
			m.PSS = v * 1024
		}
	}
	if m.RSS == 0 {
		return Mem{}, fmt.Errorf("/proc/%d/smaps_rollup: no Rss", pid)
	}
	return m, nil
}

// procTable is a snapshot of the host's process tree.
type procTable struct {
	parent   map[int]int
	children map[int][]int
	argv0    map[int]string
}

func readProcTable() *procTable {
	t := &procTable{parent: map[int]int{}, children: map[int][]int{}, argv0: map[int]string{}}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		t.parent[pid] = ppid
		t.children[ppid] = append(t.children[ppid], pid)
		if c, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil {
			t.argv0[pid] = filepath.Base(string(bytes.SplitN(c, []byte{0}, 2)[0]))
		}
	}
	return t
}

// shimOf walks up from a container's init to the shim process that serves it.
func (t *procTable) shimOf(pid int) (int, error) {
	for p, n := pid, 0; p > 1 && n < 64; p, n = t.parent[p], n+1 {
		if strings.HasPrefix(t.argv0[p], "containerd-shim") {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no containerd-shim process above pid %d", pid)
}

// overhead returns the shim and every process below it that is not part of a container
// (a container is its init and everything below): helpers such as lxcri-start count as
// the runtime's cost, the containers' own processes do not.
func (t *procTable) overhead(shim int, inits map[int]bool) []int {
	var out []int
	var walk func(int)
	walk = func(p int) {
		if inits[p] {
			return
		}
		out = append(out, p)
		for _, c := range t.children[p] {
			walk(c)
		}
	}
	walk(shim)
	return out
}

// memOf sums the memory of pids.
func memOf(pids []int) (Mem, error) {
	var total Mem
	for _, p := range pids {
		m, err := smapsRollup(p)
		if err != nil {
			return Mem{}, err
		}
		total.add(m)
	}
	return total, nil
}
