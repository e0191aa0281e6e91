package llava

import (
	"context"
	"slices"
)

// generateWithFirstLogits is Generate with the prefill's logits captured, for
// parity tests of the last prompt position.
func (m *Model) generateWithFirstLogits(ctx context.Context, req Request, first *[]float32) (*Result, error) {
	m.onPrefill = func(l []float32) { *first = slices.Clone(l) }
	defer func() { m.onPrefill = nil }()
	return m.Generate(ctx, req)
}
