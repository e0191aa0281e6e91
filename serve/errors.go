package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// APIError is an error as the server sends it: an HTTP status and an
// OpenAI-style body {"error": {"message", "type", "code"}}. The client
// returns it for a refused request.
type APIError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("serve: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	return s
}

// Error types, as OpenAI names them where it has a name.
const (
	typeInvalid     = "invalid_request_error"
	typeAuth        = "authentication_error"
	typeNotFound    = "not_found_error"
	typeUnavailable = "service_unavailable_error"
	typeServer      = "server_error"
)

func errInvalid(code, format string, args ...any) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: typeInvalid, Code: code, Message: fmt.Sprintf(format, args...)}
}

func errUnavailable(code, msg string, retryAfter int) *APIError {
	return &APIError{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Code: code, Message: msg, RetryAfter: retryAfter}
}

func errInternal(err error) *APIError {
	return &APIError{Status: http.StatusInternalServerError, Type: typeServer, Code: "internal_error", Message: err.Error()}
}

// errorBody is the JSON an error is sent as, on its own or as one event of
// a stream.
func errorBody(e *APIError) []byte {
	b, _ := json.Marshal(struct {
		Error *APIError `json:"error"`
	}{e})
	return b
}

// writeError sends e as the whole response; route logs it.
func writeError(w http.ResponseWriter, e *APIError) {
	if rec, ok := w.(*recorder); ok {
		rec.refusal = e
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="avq"`)
	}
	w.WriteHeader(e.Status)
	w.Write(append(errorBody(e), '\n'))
}
