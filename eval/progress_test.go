package eval

import (
	"strings"
	"testing"
	"time"
)

// fakeClock makes Progress's timing deterministic.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestProgressPlainLines(t *testing.T) {
	var b strings.Builder
	clock := &fakeClock{t: time.Unix(1000, 0)}
	p := NewProgress(&b, false)
	p.now = clock.now
	p.Update(0, 10) // first state: always written
	clock.advance(10 * time.Second)
	p.Update(5, 10) // 10 s since the last line < 30 s: held back
	clock.advance(30 * time.Second)
	p.Update(8, 10) // 40 s since the last line: written; 8 answers in 40 s
	clock.advance(10 * time.Second)
	p.Update(10, 10) // last state: always written; 10 answers in 50 s
	p.Finish()       // nothing held back, nothing more to write
	// Rate 8/40 = 0.20/s, 2 left -> ETA 10 s; bar 8/10 of 20 = 16 marks.
	want := "[                    ] 0/10    0.0%  --/s  ETA --\n" +
		"[================    ] 8/10   80.0%  0.20/s  ETA 10s\n" +
		"[====================] 10/10  100.0%  0.20/s  ETA 0s\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestProgressFinishWritesHeldBackState(t *testing.T) {
	var b strings.Builder
	clock := &fakeClock{t: time.Unix(1000, 0)}
	p := NewProgress(&b, false)
	p.now = clock.now
	p.Update(0, 4)
	clock.advance(4 * time.Second)
	p.Update(1, 4) // held back
	p.Finish()     // a run that stops early still logs where it stopped
	// 1 answer in 4 s: 0.25/s, 3 left -> 12 s; bar 5 of 20.
	want := "[                    ] 0/4    0.0%  --/s  ETA --\n" +
		"[=====               ] 1/4   25.0%  0.25/s  ETA 12s\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestProgressTerminalRedraws(t *testing.T) {
	var b strings.Builder
	clock := &fakeClock{t: time.Unix(1000, 0)}
	p := NewProgress(&b, true)
	p.now = clock.now
	p.Update(4, 10) // resumed with 4 answered: they do not count in the rate
	clock.advance(60 * time.Second)
	p.Update(5, 10) // 1 answer in 60 s: 0.02/s (1/60 rounded), 5 left -> 300 s
	clock.advance(60 * time.Second)
	p.Update(10, 10) // 6 answers in 120 s: 0.05/s; the line is ended
	l1 := "[========            ] 4/10   40.0%  --/s  ETA --"
	l2 := "[==========          ] 5/10   50.0%  0.02/s  ETA 5m0s"
	l3 := "[====================] 10/10  100.0%  0.05/s  ETA 0s"
	want := "\r" + l1 + "\r" + l2 + "\r" + l3 + strings.Repeat(" ", len(l2)-len(l3)) + "\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
	p.Finish() // already ended: writes nothing
	if b.String() != want {
		t.Errorf("Finish after the end wrote %q", b.String()[len(want):])
	}
}
