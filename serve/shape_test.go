package serve

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for s, want := range map[string]int64{
		"250kbit": 250_000, "1mbit": 1_000_000, "2.5mbit": 2_500_000, "1gbit": 1_000_000_000,
		"9600": 9600, "800bit": 800, " 10 Mbit ": 10_000_000,
	} {
		if got, err := ParseRate(s); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "fast", "10mbps", "1kbps", "-1mbit", "0", "NaN", "mbit", "1e30bit"} {
		if _, err := ParseRate(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// pipe returns the two ends of a loopback TCP connection.
func pipe(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// The bounds below are lower bounds only: a transfer through the link can
// never be faster than the link, however fast or slow the machine is.

func TestLinkRateBothWays(t *testing.T) {
	const n, rate = 25_000, 1_000_000 // 200 ms at 1 Mbit/s
	want := time.Duration(n * 8 * int64(time.Second) / rate)
	data := bytes.Repeat([]byte("avq!"), n/4)
	raw, server := pipe(t)
	c := Link{Rate: rate}.Conn(raw)
	defer c.Close()

	t0 := time.Now()
	go func() { c.Write(data) }()
	got := make([]byte, n)
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("upload: %v", err)
	}
	if d := time.Since(t0); d < want {
		t.Errorf("%d bytes went up in %v; at %d bit/s they take %v", n, d, rate, want)
	}

	t0 = time.Now()
	go func() { server.Write(data) }()
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %v", err)
	}
	if d := time.Since(t0); d < want {
		t.Errorf("%d bytes came down in %v; at %d bit/s they take %v", n, d, rate, want)
	}
}

func TestLinkRTT(t *testing.T) {
	const rtt = 80 * time.Millisecond
	raw, server := pipe(t)
	c := Link{RTT: rtt}.Conn(raw)
	defer c.Close()
	go func() { io.Copy(server, server) }() // an echo
	buf := make([]byte, 1)
	for range 3 {
		t0 := time.Now()
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d < rtt {
			t.Errorf("a round trip took %v, less than the link's %v", d, rtt)
		}
	}
}

func TestLinkUnlimitedIsTheConn(t *testing.T) {
	raw, _ := pipe(t)
	if (Link{}).Conn(raw) != raw {
		t.Error("an unlimited link wraps the conn")
	}
}

func TestLinkDeadlineAndClose(t *testing.T) {
	before := runtime.NumGoroutine()
	raw, server := pipe(t)
	c := Link{Rate: 1_000_000, RTT: time.Millisecond}.Conn(raw)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a read past its deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	server.Write([]byte("ok"))
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ok" {
		t.Fatalf("a read after clearing the deadline: %q %v", b, err)
	}
	server.Close()
	if _, err := c.Read(b); err != io.EOF {
		t.Fatalf("the peer's close reads as %v", err)
	}
	c.Close()
	if _, err := c.Write(b); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a write after close: %v", err)
	}
	eventually(t, "the link's goroutines ending", func() bool { return runtime.NumGoroutine() <= before })
}

func TestDialerCounts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, io.LimitReader(c, 100))
		c.Close()
	}()
	const rtt = 40 * time.Millisecond
	d := &Dialer{Link: Link{Rate: 10_000_000, RTT: rtt}}
	t0 := time.Now()
	c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if dt := time.Since(t0); dt < rtt {
		t.Errorf("dialing took %v, less than one round trip %v", dt, rtt)
	}
	c.Write(make([]byte, 100))
	n, _ := io.Copy(io.Discard, c)
	c.Close()
	if sent, received := d.Bytes(); sent != 100 || received != 100 || n != 100 {
		t.Errorf("counted %d sent and %d received, read %d", sent, received, n)
	}
}
