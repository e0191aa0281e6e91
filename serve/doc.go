// Package serve is the cloud role of the edge–cloud split over HTTP, the
// client the edge uses to reach it, and an emulated network link for
// measuring the two.
//
// A Server holds one loaded llava.Model and answers:
//
//   - POST /v1/split: one AlignedVQ frame and a question (the split
//     protocol, see protocol.go and the README), the answer streamed back as
//     JSON lines. The frame is checked against the server's module; the
//     cloud tail rebuilds the features and runs the rest of the model.
//   - POST /v1/image: the same with an encoded image file instead of a
//     frame, the cloud-only baseline at the same envelope.
//   - POST /v1/chat/completions: OpenAI's Chat Completions API with the
//     image as a data: URI, streaming (server-sent events) or not.
//   - GET /health (503 while loading or draining, with the module's
//     fingerprint once ready), GET /livez (200 while the process answers,
//     loading and draining included), GET /metrics (Prometheus text
//     format), GET /v1/models, and /debug/pprof/ when enabled.
//
// max_tokens=0 on any of the three runs the vision side alone and returns
// its timings, which is how `avq bench split` measures the cloud's part.
//
// A request's body is received first, under limits of its own (uploads at
// once in all and per connection, a minimum rate, a buffer grown as bytes
// arrive; upload.go); only then does it pass a bounded queue
// (Options.Parallel running, Options.MaxQueue waiting, 503 with
// Retry-After beyond), so idle uploads cannot hold the model. Each request
// has a deadline, prompt limits and, when configured, a bearer token; work
// stops when the client goes away; every refusal is logged. Serve speaks
// HTTP/1.1 and HTTP/2 (h2c in cleartext) and drains gracefully: /health
// turns 503 with the listener still open for Options.DrainDelay, then
// running requests get Options.ShutdownTimeout; Abort cuts it short.
//
// Client sends split-protocol requests and resends a whole request that a
// balancer could not (Retry); Link and Dialer shape the client's
// connections to a given bandwidth and round-trip time.
//
// Allowed imports: the standard library, llava, llava/preprocess, vit,
// llama, vq, backend (serve sits below llava; it never touches tensors
// itself).
package serve
