package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// task is a unit of parallel work over the index range [0, n): run is called
// with disjoint sub-ranges, concurrently, each time with the scratch memory
// of the thread that runs it.
type task interface{ run(lo, hi int, s *scratch) }

// pool is a fixed set of worker goroutines that help whoever calls parallel.
// The caller works too, so a pool of size 1 has no workers at all. Nothing on
// the dispatch path allocates: jobs are recycled through a sync.Pool, and
// each worker owns its scratch memory.
//
// An idle worker spins for spinFor before it parks on the job channel, so
// that the many small ops of a decoding step (norms, RoPE, attention between
// the GEMVs) do not each pay a goroutine wake-up.
type pool struct {
	threads int
	jobs    chan *job
	stop    chan struct{}
	once    sync.Once
}

const spinFor = 50 * time.Microsecond

// job is one parallel call. It is shared by reference count: the caller and
// every worker it was sent to hold one, and the last to let go recycles it.
// A worker that picks it up late (after the caller has returned) finds no
// chunk left and touches nothing but the counters.
type job struct {
	t      task
	n      int
	grain  int
	chunks int64
	next   atomic.Int64 // next chunk to claim
	done   atomic.Int64 // chunks finished
	refs   atomic.Int32
}

var jobs = sync.Pool{New: func() any { return new(job) }}

func newPool(threads int) *pool {
	if threads < 1 {
		threads = 1
	}
	p := &pool{threads: threads, jobs: make(chan *job, 4*threads), stop: make(chan struct{})}
	for i := 1; i < threads; i++ {
		go p.worker()
	}
	return p
}

func (p *pool) worker() {
	s := new(scratch)
	for {
		j := p.receive()
		if j == nil {
			return
		}
		j.work(s)
		j.release()
	}
}

// receive returns the next job, spinning for a while before parking; nil
// when the pool is closed.
func (p *pool) receive() *job {
	var start time.Time
	for i := 0; ; i++ {
		select {
		case j := <-p.jobs:
			return j
		case <-p.stop:
			return nil
		default:
		}
		if i&63 != 63 {
			continue
		}
		if start.IsZero() {
			start = time.Now()
		} else if time.Since(start) > spinFor {
			break
		}
		runtime.Gosched()
	}
	select {
	case j := <-p.jobs:
		return j
	case <-p.stop:
		return nil
	}
}

func (p *pool) close() { p.once.Do(func() { close(p.stop) }) }

// parallel runs t over [0, n) in chunks of grain, on the caller and up to
// threads−1 workers. It returns when every chunk is done. Tasks must not call
// parallel themselves.
func (p *pool) parallel(n, grain int, t task) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	chunks := (n + grain - 1) / grain
	helpers := min(p.threads-1, chunks-1)
	s := scratches.Get().(*scratch)
	defer scratches.Put(s)
	if helpers <= 0 {
		t.run(0, n, s)
		return
	}
	j := jobs.Get().(*job)
	j.t, j.n, j.grain, j.chunks = t, n, grain, int64(chunks)
	j.next.Store(0)
	j.done.Store(0)
	j.refs.Store(int32(helpers + 1))
	for range helpers {
		p.jobs <- j
	}
	j.work(s)
	// Every chunk is claimed now; wait for the ones workers are running.
	for i := 0; j.done.Load() < j.chunks; i++ {
		if i&15 == 15 {
			runtime.Gosched()
		}
	}
	j.release()
}

func (j *job) work(s *scratch) {
	for {
		c := j.next.Add(1) - 1
		if c >= j.chunks {
			return
		}
		lo := int(c) * j.grain
		j.t.run(lo, min(lo+j.grain, j.n), s)
		j.done.Add(1)
	}
}

func (j *job) release() {
	if j.refs.Add(-1) == 0 {
		j.t = nil
		jobs.Put(j)
	}
}

// grainFor picks a chunk size that gives each thread a few chunks (for load
// balance) without making chunks smaller than minGrain.
func (p *pool) grainFor(n, minGrain int) int {
	g := (n + 4*p.threads - 1) / (4 * p.threads)
	return max(g, minGrain, 1)
}

// scratch is one thread's reusable float32 memory; it grows to the largest
// request and stays, so steady-state ops allocate nothing.
type scratch struct{ buf []float32 }

// floats returns n floats of s (contents undefined).
func (s *scratch) floats(n int) []float32 {
	if cap(s.buf) < n {
		s.buf = make([]float32, n)
	}
	return s.buf[:n]
}

// scratches holds the scratch of callers of parallel (any goroutine);
// workers own theirs.
var scratches = sync.Pool{New: func() any { return new(scratch) }}
