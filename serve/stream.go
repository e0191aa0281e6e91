package serve

import (
	"fmt"
	"net/http"
)

// stream writes a streamed answer: the headers with the first event, then
// each event flushed as it comes. A failed write means the client is gone.
type stream struct {
	w           http.ResponseWriter
	rc          *http.ResponseController
	contentType string
	committed   bool // the status and headers are sent
}

func newStream(w http.ResponseWriter, contentType string) *stream {
	return &stream{w: w, rc: http.NewResponseController(w), contentType: contentType}
}

func (st *stream) send(event []byte) error {
	if !st.committed {
		h := st.w.Header()
		h.Set("Content-Type", st.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // proxies such as nginx must not hold the stream back
		st.w.WriteHeader(http.StatusOK)
		st.committed = true
	}
	if _, err := st.w.Write(event); err != nil {
		return fmt.Errorf("%w: %v", errClientGone, err)
	}
	if err := st.rc.Flush(); err != nil {
		return fmt.Errorf("%w: %v", errClientGone, err)
	}
	return nil
}
