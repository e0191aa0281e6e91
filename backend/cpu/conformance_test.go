package cpu

import (
	"testing"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/backend/backendtest"
)

// TestConformance runs the backend conformance suite under each kernel set
// this CPU has, with 1, 2 and 3 threads as the variants the determinism rule
// says must agree bit for bit.
func TestConformance(t *testing.T) {
	forEachKernelSet(t, func(t *testing.T) {
		b1, b2, b3 := New(1), New(2), New(3)
		defer b1.Close()
		defer b2.Close()
		defer b3.Close()
		backendtest.Run(t, backendtest.Config{B: b1, Variants: []backend.Backend{b2, b3}})
	})
}
