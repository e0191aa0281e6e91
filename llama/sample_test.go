package llama

import "testing"

func TestSampler(t *testing.T) {
	logits := []float32{1, 3, 3, 0.5, -2}
	if id := NewSampler(Sampling{}).Next(logits); id != 1 {
		t.Fatalf("greedy picked %d, want the first of the tied maxima", id)
	}
	// top-k 2 leaves ids 1 and 2 only.
	s := NewSampler(Sampling{Temperature: 1, TopK: 2, Seed: 7})
	seen := map[int32]int{}
	for range 2000 {
		seen[s.Next(logits)]++
	}
	if len(seen) != 2 || seen[1] < 800 || seen[2] < 800 {
		t.Fatalf("top-k 2 draws: %v", seen)
	}
	// top-p small keeps only the single most likely token.
	s = NewSampler(Sampling{Temperature: 1, TopP: 0.01, Seed: 1})
	for range 100 {
		if id := s.Next([]float32{0, 5, 1}); id != 1 {
			t.Fatalf("top-p 0.01 drew %d", id)
		}
	}
	// The same seed draws the same sequence.
	a, b := NewSampler(Sampling{Temperature: 0.8, Seed: 42}), NewSampler(Sampling{Temperature: 0.8, Seed: 42})
	for range 50 {
		if a.Next(logits) != b.Next(logits) {
			t.Fatal("same seed, different draws")
		}
	}
	if n := testing.AllocsPerRun(100, func() { a.Next(logits) }); n != 0 {
		t.Fatalf("%v allocations per draw", n)
	}
}
