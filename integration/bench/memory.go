//go:build linux

package bench

import (
	"fmt"
	"time"
)

// memRound measures one backend: MemContainers containers with a shim each, and one pod
// per pod size whose containers share a shim. It returns the memory of each single shim
// (with its helpers), and per pod size the memory of the pod's shim.
func (r *runner) memRound(b *Backend, round int) (singles []Mem, pods map[int]Mem, retErr error) {
	var all []*running
	var groups []string
	defer func() {
		if err := r.stop(all); err != nil && retErr == nil {
			retErr = err
		}
		if err := r.waitNoShims(20 * time.Second); err != nil && retErr == nil {
			retErr = err
		}
		// containerd's pkg/shim removes the socket named after the shim's first
		// container at exit, but a group's socket is named after the group
		for _, g := range groups {
			r.removeStaleSocket(b, g)
		}
	}()
	var singleRs []*running
	for i := 0; i < r.o.MemContainers; i++ {
		x, err := r.startDetached(b, r.id("mem", b), nil)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, x)
		singleRs = append(singleRs, x)
	}
	podRs := map[int][]*running{}
	for _, k := range r.o.PodSizes {
		group := fmt.Sprintf("pod%d-%s-r%d", k, b.Key, round)
		groups = append(groups, group)
		r.mu.Lock()
		r.names = append(r.names, group)
		r.mu.Unlock()
		ann := map[string]string{b.GroupAnnotation: group}
		for i := 0; i < k; i++ {
			x, err := r.startDetached(b, r.id(fmt.Sprintf("pod%d", k), b), ann)
			if err != nil {
				return nil, nil, err
			}
			all = append(all, x)
			podRs[k] = append(podRs[k], x)
		}
	}
	// Let the shims settle (their start-up garbage collected, their goroutines parked).
	select {
	case <-time.After(r.o.Settle):
	case <-r.ctx.Done():
		return nil, nil, r.ctx.Err()
	}
	pt := readProcTable()
	inits := map[int]bool{}
	for _, x := range all {
		inits[x.pid] = true
	}
	shimOf := func(x *running) (int, error) { return pt.shimOf(x.pid) }
	seen := map[int]bool{}
	for _, x := range singleRs {
		shim, err := shimOf(x)
		if err != nil {
			return nil, nil, err
		}
		if seen[shim] {
			return nil, nil, fmt.Errorf("%s: ungrouped containers share shim %d", b.Key, shim)
		}
		seen[shim] = true
		m, err := memOf(pt.overhead(shim, inits))
		if err != nil {
			return nil, nil, err
		}
		singles = append(singles, m)
	}
	pods = map[int]Mem{}
	for _, k := range r.o.PodSizes {
		var shim int
		for _, x := range podRs[k] {
			s, err := shimOf(x)
			if err != nil {
				return nil, nil, err
			}
			if shim != 0 && s != shim {
				return nil, nil, fmt.Errorf("%s: the containers of pod %d are served by shims %d and %d, want one", b.Key, k, shim, s)
			}
			if seen[s] {
				return nil, nil, fmt.Errorf("%s: pod %d shares shim %d with another container", b.Key, k, s)
			}
			shim = s
		}
		seen[shim] = true
		m, err := memOf(pt.overhead(shim, inits))
		if err != nil {
			return nil, nil, err
		}
		pods[k] = m
	}
	return singles, pods, nil
}

func (r *runner) measureMemory() error {
	const g = "2. memory"
	frss := r.rep.figure(g, "mem-rss", fmt.Sprintf("shim RSS per container (%d containers, a shim each)", r.o.MemContainers), "MiB", false)
	fpss := r.rep.figure(g, "mem-pss", fmt.Sprintf("shim PSS per container (%d containers, a shim each)", r.o.MemContainers), "MiB", false)
	prss := map[int]*Figure{}
	ppss := map[int]*Figure{}
	for _, k := range r.o.PodSizes {
		prss[k] = r.rep.figure(g, fmt.Sprintf("pod%d-rss", k), fmt.Sprintf("shim RSS per container, pod of %d (one shim)", k), "MiB", false)
		ppss[k] = r.rep.figure(g, fmt.Sprintf("pod%d-pss", k), fmt.Sprintf("shim PSS per container, pod of %d (one shim)", k), "MiB", false)
	}
	figs := []*Figure{frss, fpss}
	for _, k := range r.o.PodSizes {
		figs = append(figs, prss[k], ppss[k])
	}
	st := r.newStep(figs...)
	for i := 0; i < r.o.MemRounds; i++ {
		for _, b := range st.backends(i) {
			r.progress("memory: round %d/%d: %s", i+1, r.o.MemRounds, b.Key)
			if err := r.before(b); err != nil {
				return err
			}
			singles, pods, err := r.memRound(b, i)
			if err != nil {
				st.fail(b, err)
				continue
			}
			for _, m := range singles {
				frss.add(b, mib(m.RSS))
				fpss.add(b, mib(m.PSS))
			}
			for k, m := range pods {
				prss[k].add(b, mib(m.RSS)/float64(k))
				ppss[k].add(b, mib(m.PSS)/float64(k))
			}
		}
	}
	return nil
}
