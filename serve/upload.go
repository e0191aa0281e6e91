package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// Receiving a request body is kept apart from the model's queue: a request
// takes no queue place and no slot until its whole body is in, so clients
// that open uploads and send nothing (or one h2c connection with many such
// streams) cannot lock the model up. Uploads have limits of their own:
// Options.MaxUploads at once in all, Options.MaxUploadsPerConn on one
// connection, and a minimum rate after uploadGrace (Options.MinUploadRate).
// A body's buffer grows as its bytes arrive, never to the length a client
// claims.

// uploadGrace is the time a body has before the minimum rate applies: a
// round trip and a slow start on a poor link.
const uploadGrace = 2 * time.Second

// Bounds on discarding the rest of a refused body (413) so that a client
// that sends its whole body before reading (Python's urllib, curl without
// Expect) reads the refusal instead of a reset connection.
const maxDiscard = 64 << 20

// connKey finds a connection's upload count in a request's context.
type connKey struct{}

// connContext gives each connection its count of uploads in progress.
func connContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, new(atomic.Int64))
}

// takeUpload claims an upload place for r, on its connection and in all.
// A nil error must be followed by the returned release.
func (s *Server) takeUpload(r *http.Request) (func(), *APIError) {
	perConn, _ := r.Context().Value(connKey{}).(*atomic.Int64)
	if perConn != nil && perConn.Add(1) > int64(s.opt.MaxUploadsPerConn) {
		perConn.Add(-1)
		return nil, &APIError{Status: http.StatusTooManyRequests, Type: typeInvalid, Code: "too_many_uploads",
			Message:    fmt.Sprintf("this connection already sends %d request bodies at once, the most the server takes", s.opt.MaxUploadsPerConn),
			RetryAfter: 1}
	}
	if s.uploading.Add(1) > int64(s.opt.MaxUploads) {
		s.uploading.Add(-1)
		if perConn != nil {
			perConn.Add(-1)
		}
		return nil, errUnavailable("upload_slots_full", fmt.Sprintf("the server already receives %d request bodies, the most it takes", s.opt.MaxUploads), 1)
	}
	return func() {
		s.uploading.Add(-1)
		if perConn != nil {
			perConn.Add(-1)
		}
	}, nil
}

// pacedReader reads a body under a read deadline that moves with the bytes
// received: uploadGrace plus one second per rate bytes, never past hard.
type pacedReader struct {
	r     io.Reader
	rc    *http.ResponseController
	start time.Time
	hard  time.Time // start + ReadTimeout
	rate  int64     // bytes a second; 0: only the hard deadline
	n     int64     // bytes read
	at    time.Time // the deadline of the last read
}

func (p *pacedReader) Read(b []byte) (int, error) {
	p.at = p.hard
	if p.rate > 0 {
		if paced := p.start.Add(uploadGrace + time.Duration(float64(p.n)/float64(p.rate)*float64(time.Second))); paced.Before(p.hard) {
			p.at = paced
		}
	}
	p.rc.SetReadDeadline(p.at)
	n, err := p.r.Read(b)
	p.n += int64(n)
	return n, err
}

// readBody receives a request body: at most MaxBody bytes, into a buffer
// grown as they arrive, at MinUploadRate or faster after uploadGrace, and
// within ReadTimeout, holding an upload place meanwhile. A body over
// MaxBody is refused with 413 and the rest of it discarded after the
// answer (see route); after any other failure the connection is closed.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, endpoint string) ([]byte, *APIError) {
	if r.ContentLength > s.opt.MaxBody {
		return nil, s.tooLarge(w, r, r.ContentLength)
	}
	release, e := s.takeUpload(r)
	if e != nil {
		return nil, e
	}
	defer release()
	rc := http.NewResponseController(w)
	start := time.Now()
	p := &pacedReader{r: r.Body, rc: rc, start: start, hard: start.Add(s.opt.ReadTimeout), rate: s.opt.MinUploadRate}
	var buf bytes.Buffer
	buf.Grow(int(min(max(r.ContentLength, 0), 64<<10)))
	_, err := buf.ReadFrom(io.LimitReader(p, s.opt.MaxBody+1))
	switch {
	case err == nil && int64(buf.Len()) > s.opt.MaxBody:
		return nil, s.tooLarge(w, r, int64(buf.Len()))
	case err == nil:
		// The deadline must not cut the connection while the answer is
		// computed: HTTP/1's watch for a client going away reads it.
		rc.SetReadDeadline(time.Time{})
		s.metrics.body(endpoint, buf.Len())
		return buf.Bytes(), nil
	}
	w.Header().Set("Connection", "close")
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && p.at.Before(p.hard):
		return nil, &APIError{Status: http.StatusRequestTimeout, Type: typeInvalid, Code: "body_too_slow",
			Message: fmt.Sprintf("the request body arrived at less than %d bytes a second (%d bytes in %.1f s)",
				s.opt.MinUploadRate, p.n, time.Since(start).Seconds())}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, &APIError{Status: http.StatusRequestTimeout, Type: typeInvalid, Code: "body_timeout",
			Message: "the request body did not arrive within " + s.opt.ReadTimeout.String()}
	default:
		return nil, errInvalid("bad_body", "reading the request body: %v", err)
	}
}

// tooLarge refuses a body over MaxBody with 413 and marks what is left of
// it to be discarded once the refusal is sent: an HTTP/1 client that sends
// everything before it reads would otherwise meet a reset connection.
func (s *Server) tooLarge(w http.ResponseWriter, r *http.Request, n int64) *APIError {
	w.Header().Set("Connection", "close")
	if rec, ok := w.(*recorder); ok && r.ProtoMajor == 1 {
		// Without full duplex the HTTP/1 server would close the connection
		// on the unread body as soon as the refusal is written.
		http.NewResponseController(w).EnableFullDuplex()
		rec.discard = r.Body
	}
	return &APIError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalid, Code: "body_too_large",
		Message: fmt.Sprintf("the request body has at least %d bytes; the server takes at most %d", n, s.opt.MaxBody)}
}

// discardBody reads and drops what is left of a refused HTTP/1 body, at
// most maxDiscard bytes within ReadTimeout, after the refusal is flushed.
func (s *Server) discardBody(w http.ResponseWriter, body io.Reader) {
	rc := http.NewResponseController(w)
	rc.Flush()
	rc.SetReadDeadline(time.Now().Add(s.opt.ReadTimeout))
	io.CopyN(io.Discard, body, maxDiscard)
}
