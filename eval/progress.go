package eval

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress renders an evaluation's progress (done/total, rate, ETA) to a
// writer. On a terminal it redraws one line in place with "\r"; anywhere else
// (a log file, a pipe) it writes a plain line at most every Interval, plus the
// first and the last state, so logs stay short and readable.
//
// Its Update method has the signature Run's progress callback takes.
type Progress struct {
	w        io.Writer
	tty      bool
	Interval time.Duration // time between lines when not a terminal
	now      func() time.Time

	started   bool
	start     time.Time
	startDone int // answers that were already there (resumed) at the start
	lastLine  time.Time
	lastDone  int
	lastTotal int
	printed   bool // the latest state has been written
	open      bool // a terminal line is drawn but not ended
	width     int  // length of the drawn terminal line
}

// NewProgress returns a progress display writing to w; tty says whether w is
// a terminal.
func NewProgress(w io.Writer, tty bool) *Progress {
	return &Progress{w: w, tty: tty, Interval: 30 * time.Second, now: time.Now}
}

// Update records that done of total questions are answered. The rate counts
// only answers given since the first Update, so resumed answers do not
// inflate it.
func (p *Progress) Update(done, total int) {
	t := p.now()
	first := !p.started
	if first {
		p.started, p.start, p.startDone, p.lastLine = true, t, done, t
	}
	p.lastDone, p.lastTotal, p.printed = done, total, false
	if p.tty {
		p.draw(t)
		if done >= total {
			p.Finish()
		}
		return
	}
	if first || done >= total || t.Sub(p.lastLine) >= p.Interval {
		p.writeLine(t)
	}
}

// Finish ends the display: it ends a terminal line, or writes the latest state
// if the interval held it back. Call it when a run stops early.
func (p *Progress) Finish() {
	if !p.started {
		return
	}
	if p.tty {
		if p.open {
			fmt.Fprintln(p.w)
			p.open = false
		}
		return
	}
	if !p.printed {
		p.writeLine(p.now())
	}
}

func (p *Progress) draw(t time.Time) {
	s := p.render(t)
	pad := ""
	if n := p.width - len(s); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", s, pad)
	p.width, p.open, p.printed = len(s), true, true
}

func (p *Progress) writeLine(t time.Time) {
	fmt.Fprintln(p.w, p.render(t))
	p.lastLine, p.printed = t, true
}

// render formats "[=====     ] 120/500  24.0%  1.50/s  ETA 4m13s".
func (p *Progress) render(t time.Time) string {
	const barWidth = 20
	done, total := p.lastDone, p.lastTotal
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	filled := int(frac * barWidth)
	filled = min(max(filled, 0), barWidth)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled)

	rate, eta := "--/s", "--"
	elapsed := t.Sub(p.start)
	if n := done - p.startDone; n > 0 && elapsed > 0 {
		perSec := float64(n) / elapsed.Seconds()
		rate = fmt.Sprintf("%.2f/s", perSec)
		left := time.Duration(float64(total-done) / perSec * float64(time.Second))
		eta = left.Round(time.Second).String()
	}
	if done >= total {
		eta = "0s"
	}
	return fmt.Sprintf("[%s] %d/%d  %5.1f%%  %s  ETA %s", bar, done, total, 100*frac, rate, eta)
}
