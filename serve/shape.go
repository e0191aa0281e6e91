package serve

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Link is an emulated network path between a client and a server, applied
// to the client's own connections so that experiments need no root (tc
// netem does the same in the kernel, on egress only).
//
// The model, per direction: data crosses a bottleneck of Rate bit/s in
// packets of up to LinkPacket bytes, one after the other (a token bucket
// whose depth is one packet), then takes RTT/2 to reach the other end. A
// packet that is ready while the bottleneck is busy waits for it; delays do
// not add up across packets, so a stream of n bytes arrives n·8/Rate after
// its first byte left, plus RTT/2. Opening a connection costs one RTT (the
// TCP handshake). The loopback or LAN path underneath adds its own, normally
// negligible, time.
type Link struct {
	Rate int64         // bits per second, each direction; 0: unlimited
	RTT  time.Duration // round-trip time; 0: none
}

// LinkPacket is the unit in which a Link sends: an Ethernet MTU.
const LinkPacket = 1500

// ParseRate reads a bit rate as tc writes it: a number with the unit bit,
// kbit, mbit or gbit (decimal: 1 kbit = 1000 bit/s), e.g. "250kbit",
// "2.5mbit". A bare number is bit/s. tc's "kbps" and "mbps" mean bytes per
// second, a common source of 8× mistakes, so they are refused.
func ParseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if strings.HasSuffix(t, "bps") {
		return 0, fmt.Errorf("serve: rate %q: write the unit as bit, kbit, mbit or gbit (bits per second)", s)
	}
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v > 0) || v*mult > 1e12 {
		return 0, fmt.Errorf("serve: rate %q: want a positive number of bit, kbit, mbit or gbit, at most 1000gbit", s)
	}
	return max(1, int64(v*mult+0.5)), nil
}

// serialization is how long n bytes take through the bottleneck.
func (l Link) serialization(n int) time.Duration {
	if l.Rate <= 0 {
		return 0
	}
	return time.Duration(float64(n) * 8 / float64(l.Rate) * float64(time.Second))
}

// Conn returns c shaped by the link, or c itself when the link is
// unlimited. Closing the returned conn closes c.
func (l Link) Conn(c net.Conn) net.Conn {
	if l.Rate <= 0 && l.RTT <= 0 {
		return c
	}
	s := &shapedConn{
		Conn:    c,
		link:    l,
		oneWay:  l.RTT / 2,
		out:     make(chan packet, 16),
		in:      make(chan packet, 16),
		closed:  make(chan struct{}),
		kick:    make(chan struct{}, 1),
		wclock:  time.Now(),
		rclock:  time.Now(),
		werrSet: make(chan struct{}),
	}
	go s.sendLoop()
	go s.receiveLoop()
	return s
}

// packet is data in flight, delivered at due; err ends the stream.
type packet struct {
	b   []byte
	due time.Time
	err error
}

// shapedConn delays and paces both directions of a conn. Two goroutines
// act as the wire: sendLoop hands written packets to the conn at their
// arrival time, receiveLoop stamps what the conn receives with the time it
// would arrive through the link. Both end when the conn is closed.
type shapedConn struct {
	net.Conn
	link   Link
	oneWay time.Duration

	wmu     sync.Mutex
	wclock  time.Time // when the bottleneck finishes sending what was written
	out     chan packet
	werr    error // the first error of the underlying Write; set once
	werrSet chan struct{}

	rclock    time.Time // receiveLoop's bottleneck clock
	in        chan packet
	rmu       sync.Mutex
	cur       packet // being read; guarded by rmu
	deadline  atomic.Pointer[time.Time]
	kick      chan struct{} // a new read deadline
	closed    chan struct{}
	closeOnce sync.Once
}

func (s *shapedConn) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n := 0
	for n < len(p) {
		select {
		case <-s.werrSet:
			return n, s.werr
		case <-s.closed:
			return n, net.ErrClosed
		default:
		}
		k := min(len(p)-n, LinkPacket)
		now := time.Now()
		if s.wclock.Before(now) {
			s.wclock = now
		}
		s.wclock = s.wclock.Add(s.link.serialization(k))
		pk := packet{b: append([]byte(nil), p[n:n+k]...), due: s.wclock.Add(s.oneWay)}
		select {
		case s.out <- pk:
		case <-s.closed:
			return n, net.ErrClosed
		}
		n += k
		// The writer is held until its bytes have left, as a sender with a
		// small socket buffer is; this also bounds the data in flight.
		if err := s.sleepUntil(s.wclock, nil); err != nil {
			return n, err
		}
	}
	return n, nil
}

// sendLoop puts each written packet on the conn when it is due.
func (s *shapedConn) sendLoop() {
	for {
		select {
		case <-s.closed:
			return
		case pk := <-s.out:
			if s.sleepUntil(pk.due, nil) != nil {
				return
			}
			if _, err := s.Conn.Write(pk.b); err != nil {
				s.werr = err
				close(s.werrSet)
				return
			}
		}
	}
}

// receiveLoop reads the conn and stamps each packet with its arrival time
// through the link.
func (s *shapedConn) receiveLoop() {
	buf := make([]byte, 16<<10)
	for {
		n, err := s.Conn.Read(buf)
		now := time.Now()
		for off := 0; off < n; off += LinkPacket {
			k := min(n-off, LinkPacket)
			if s.rclock.Before(now) {
				s.rclock = now
			}
			s.rclock = s.rclock.Add(s.link.serialization(k))
			pk := packet{b: append([]byte(nil), buf[off:off+k]...), due: s.rclock.Add(s.oneWay)}
			select {
			case s.in <- pk:
			case <-s.closed:
				return
			}
		}
		if err != nil {
			due := now.Add(s.oneWay)
			if s.rclock.Add(s.oneWay).After(due) {
				due = s.rclock.Add(s.oneWay)
			}
			select {
			case s.in <- packet{err: err, due: due}:
			case <-s.closed:
			}
			return
		}
	}
}

func (s *shapedConn) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for len(s.cur.b) == 0 && s.cur.err == nil {
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	if err := s.sleepUntil(s.cur.due, s.deadline.Load()); err != nil {
		return 0, err
	}
	if len(s.cur.b) == 0 {
		return 0, s.cur.err // the stream's end stays for every later Read
	}
	n := copy(p, s.cur.b)
	s.cur.b = s.cur.b[n:]
	return n, nil
}

// next waits for the next received packet. It returns nil without one when
// the read deadline changed, so that the caller looks again.
func (s *shapedConn) next() error {
	var timeout <-chan time.Time
	if dl := s.deadline.Load(); dl != nil {
		d := time.Until(*dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case s.cur = <-s.in:
		return nil
	case <-s.kick:
		return nil
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-s.closed:
		return net.ErrClosed
	}
}

// sleepUntil waits for t, or returns early with an error when the conn is
// closed or the deadline dl passes first.
func (s *shapedConn) sleepUntil(t time.Time, dl *time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	if dl != nil && dl.Before(t) {
		d = time.Until(*dl)
	}
	timer := time.NewTimer(max(d, 0))
	defer timer.Stop()
	select {
	case <-timer.C:
		if dl != nil && dl.Before(t) {
			return os.ErrDeadlineExceeded
		}
		return nil
	case <-s.closed:
		return net.ErrClosed
	}
}

func (s *shapedConn) Close() error {
	err := net.ErrClosed
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.Conn.Close()
	})
	return err
}

// SetReadDeadline applies to Read as net.Conn says, including a Read that
// is waiting.
func (s *shapedConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		s.deadline.Store(nil)
	} else {
		s.deadline.Store(&t)
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// SetWriteDeadline bounds the underlying writes. A Write waiting for the
// bottleneck finishes its wait first.
func (s *shapedConn) SetWriteDeadline(t time.Time) error { return s.Conn.SetWriteDeadline(t) }

func (s *shapedConn) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// Dialer dials TCP connections through a Link and counts the bytes that
// cross them: the bytes TCP carries for the application (HTTP headers and
// TLS records included, TCP/IP headers not).
type Dialer struct {
	Link Link
	net.Dialer

	sent, received atomic.Int64
}

// DialContext dials addr and shapes the connection. The handshake costs
// one RTT.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.Dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if d.Link.RTT > 0 {
		t := time.NewTimer(d.Link.RTT)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			c.Close()
			return nil, ctx.Err()
		}
	}
	return &countingConn{Conn: d.Link.Conn(c), d: d}, nil
}

// Bytes returns the bytes sent and received over every connection dialed.
func (d *Dialer) Bytes() (sent, received int64) { return d.sent.Load(), d.received.Load() }

type countingConn struct {
	net.Conn
	d *Dialer
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.d.sent.Add(int64(n))
	return n, err
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.d.received.Add(int64(n))
	return n, err
}
