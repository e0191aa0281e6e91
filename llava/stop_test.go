package llava

import (
	"strings"
	"testing"
)

// pieces is a textDecoder that returns fixed strings, one per id.
type pieces []string

func (p pieces) Push(id int32) string { return p[id] }
func (p pieces) Flush() string        { return "" }

func TestStopWriterHoldsBackAndCuts(t *testing.T) {
	dec := pieces{"Hello", " wor", "ld", "\nUS", "ER:", " more"}
	var streamed []string
	w := newStopWriter(dec, []string{"\nUSER:"}, func(s string) error { streamed = append(streamed, s); return nil })
	for id := int32(0); id < int32(len(dec)); id++ {
		hit, err := w.push(id)
		if err != nil {
			t.Fatal(err)
		}
		if hit {
			if id != 4 {
				t.Fatalf("stopped at piece %d", id)
			}
			break
		}
	}
	w.flush()
	if got := w.text.String(); got != "Hello world" || strings.Join(streamed, "") != got {
		t.Fatalf("text %q, streamed %q", got, streamed)
	}
	// "\nUS" could start the stop string, so it was held back, never streamed.
	for _, s := range streamed {
		if strings.Contains(s, "US") {
			t.Fatalf("streamed %q before the stop string was ruled out", s)
		}
	}
	// A held-back prefix that does not become a stop string is released.
	w = newStopWriter(pieces{"a\nU", "p"}, []string{"\nUSER:"}, nil)
	w.push(0)
	w.push(1)
	w.flush()
	if got := w.text.String(); got != "a\nUp" {
		t.Fatalf("text %q", got)
	}
}
