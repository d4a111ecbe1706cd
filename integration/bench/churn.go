//go:build linux

package bench

import (
	"fmt"
	"sync"
	"time"
)

func (r *runner) churnRound(b *Backend) (float64, error) {
	ids := make(chan string, r.o.Churn)
	for i := 0; i < r.o.Churn; i++ {
		ids <- r.id("churn", b)
	}
	close(ids)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < r.o.InFlight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				mu.Lock()
				failed := firstErr != nil
				mu.Unlock()
				if failed {
					continue
				}
				if _, err := r.lifecycle(b, id, nil); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(r.o.Churn) / d.Seconds(), nil
}

func (r *runner) measureChurn() error {
	f := r.rep.figure("3. churn", "churn",
		fmt.Sprintf("churn: %d containers created, started, waited, deleted, %d in flight", r.o.Churn, r.o.InFlight),
		"containers/s", true)
	st := r.newStep(f)
	for i := 0; i < r.o.ChurnRounds; i++ {
		for _, b := range st.backends(i) {
			r.progress("churn: round %d/%d: %s", i+1, r.o.ChurnRounds, b.Key)
			if err := r.before(b); err != nil {
				return err
			}
			v, err := r.churnRound(b)
			if err != nil {
				st.fail(b, err)
				continue
			}
			f.add(b, v)
		}
	}
	return nil
}
