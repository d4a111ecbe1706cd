package shim

import (
	"context"
	"sync"

	"github.com/containerd/containerd/v2/core/events"
	ctdruntime "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
)

// eventQueue publishes events one at a time in the order they were sent: containerd
// relies on TaskCreate before TaskStart, TaskOOM before TaskExit, TaskExit before TaskDelete.
type eventQueue struct {
	ch   chan events.Event
	done chan struct{}

	mu     sync.Mutex
	closed bool
}

func newEventQueue(ctx context.Context, publisher shim.Publisher) *eventQueue {
	q := &eventQueue{ch: make(chan events.Event, 128), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		defer publisher.Close()
		ctx := context.WithoutCancel(ctx)
		for e := range q.ch {
			if err := publisher.Publish(ctx, ctdruntime.GetTopic(e), e); err != nil {
				log.G(ctx).WithError(err).Error("publish event")
			}
		}
	}()
	return q
}

// send queues e. After close it drops e: an init's exit may still be on its way out of
// watchInit when containerd shuts down a shim whose last task it deleted.
func (q *eventQueue) send(e events.Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.ch <- e
}

// close flushes the queue.
func (q *eventQueue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	<-q.done
}
