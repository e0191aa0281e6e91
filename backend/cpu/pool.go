package cpu

import (
	"sync"
	"sync/atomic"
)

// task is a unit of parallel work over the index range [0, n): run is called
// with disjoint sub-ranges, concurrently.
type task interface{ run(lo, hi int) }

// pool is a fixed set of worker goroutines that help whoever calls parallel.
// The caller works too, so a pool of size 1 has no workers at all. Nothing on
// the dispatch path allocates: jobs and tasks are recycled through sync.Pools.
type pool struct {
	threads int
	jobs    chan *job
	stop    chan struct{}
	once    sync.Once
}

type job struct {
	t     task
	n     int
	grain int
	next  atomic.Int64
	wg    sync.WaitGroup
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
	for {
		select {
		case j := <-p.jobs:
			j.work()
			j.wg.Done()
		case <-p.stop:
			return
		}
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
	if grain < 1 {
		grain = 1
	}
	chunks := (n + grain - 1) / grain
	helpers := min(p.threads-1, chunks-1)
	if helpers <= 0 {
		t.run(0, n)
		return
	}
	j := jobs.Get().(*job)
	j.t, j.n, j.grain = t, n, grain
	j.next.Store(0)
	j.wg.Add(helpers)
	for range helpers {
		p.jobs <- j
	}
	j.work()
	j.wg.Wait()
	j.t = nil
	jobs.Put(j)
}

func (j *job) work() {
	for {
		lo := int(j.next.Add(1)-1) * j.grain
		if lo >= j.n {
			return
		}
		j.t.run(lo, min(lo+j.grain, j.n))
	}
}

// grainFor picks a chunk size that gives each thread a few chunks (for load
// balance) without making chunks smaller than minGrain.
func (p *pool) grainFor(n, minGrain int) int {
	g := (n + 4*p.threads - 1) / (4 * p.threads)
	return max(g, minGrain, 1)
}

// scratch hands out reusable float32 buffers to tasks.
var scratch = sync.Pool{New: func() any { return new([]float32) }}

func getScratch(n int) *[]float32 {
	s := scratch.Get().(*[]float32)
	if cap(*s) < n {
		*s = make([]float32, n)
	}
	*s = (*s)[:n]
	return s
}

func putScratch(s *[]float32) { scratch.Put(s) }
