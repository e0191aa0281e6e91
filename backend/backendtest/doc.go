// Package backendtest is the conformance suite every backend runs: each
// method of backend.Backend, and of the extensions a backend implements,
// against a float64 reference on random inputs, with error bounds derived
// from the operation (relative to the size of the terms that make each
// result, never to the result alone, which can cancel), at edge shapes, in
// every dtype the method accepts, through views, with the aliasing the
// contract allows, on bad shapes (which must panic), and under the
// determinism rule (variants of one backend, such as thread counts, give
// identical bits).
//
// A backend's test calls Run; a test that must see individual failures (the
// suite's own planted-bug test) calls Checks.
//
// Allowed imports: the standard library, package backend and tensor.
package backendtest
