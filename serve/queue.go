package serve

import (
	"context"
	"sync/atomic"
)

// queue admits at most parallel requests to the model at once and lets at
// most maxQueue more wait. A request takes its place once its body is in
// (see upload.go), so the queue never holds a slow or idle upload, and the
// server never holds more than parallel + maxQueue bodies waiting for the
// model.
type queue struct {
	slots    chan struct{}
	admitted atomic.Int64 // waiting or running
	running  atomic.Int64
	limit    int64 // parallel + maxQueue
}

func newQueue(parallel, maxQueue int) *queue {
	return &queue{slots: make(chan struct{}, parallel), limit: int64(parallel + maxQueue)}
}

// admit takes a place in the queue, or reports false when it is full.
// A true admit must be followed by leave.
func (q *queue) admit() bool {
	if q.admitted.Add(1) > q.limit {
		q.admitted.Add(-1)
		return false
	}
	return true
}

// run waits for a slot; it returns ctx's error if ctx ends first. A nil
// return must be followed by done.
func (q *queue) run(ctx context.Context) error {
	select {
	case q.slots <- struct{}{}:
		q.running.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// done gives the slot back.
func (q *queue) done() {
	q.running.Add(-1)
	<-q.slots
}

// leave gives the place back.
func (q *queue) leave() { q.admitted.Add(-1) }

// depth is the number of admitted requests waiting for a slot.
func (q *queue) depth() int64 { return max(0, q.admitted.Load()-q.running.Load()) }
