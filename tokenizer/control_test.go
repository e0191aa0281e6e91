package tokenizer

import (
	"slices"
	"strings"
	"testing"
)

// addedSpans marks every added token of text as a control, the way a
// template marks the ones it puts.
func addedSpans(tk *Tokenizer, text string) []Span {
	var spans []Span
	at := 0
	for _, seg := range tk.splitAdded(text, nil) {
		if seg.token {
			spans = append(spans, Span{at, at + len(seg.text)})
		}
		at += len(seg.text)
	}
	return spans
}

// TestEncodeControlledKeepsTodaysIDs: with its added tokens marked as
// controls, every original-layout fixture prompt gets the reference ids
// (TestPromptIDs checks the llava-hf ones), and a conversation the ids of
// Encode.
func TestEncodeControlledKeepsTodaysIDs(t *testing.T) {
	tiny, orig := loadFixtures(t)
	prompts := []string{" USER: <image>\nWhat is in the image? ASSISTANT: A red bicycle leaning against a brick wall.</s>USER: And? ASSISTANT:"}
	for _, c := range origCases(t) {
		prompts = append(prompts, c.Prompt)
		spans := addedSpans(tiny, c.Prompt) // tiny-llava has <image> as an added token, orig-llava not
		if got := orig.EncodeImageChunksControlled(c.Prompt, spans, -200); !slices.Equal(got, c.InputIDs) {
			t.Errorf("%s: EncodeImageChunksControlled = %v, want %v", c.Name, got, c.InputIDs)
		}
	}
	for _, p := range prompts {
		for _, tk := range []*Tokenizer{tiny, orig} {
			if got, want := tk.EncodeControlled(p, addedSpans(tk, p), true), tk.Encode(p, true); !slices.Equal(got, want) {
				t.Errorf("%q: EncodeControlled = %v, Encode %v", p, got, want)
			}
		}
	}
}

// TestUserControlTokensArePlainText: outside the controls, "<s>", "</s>"
// and "<unk>" are text: no special id appears, the text decodes back, and
// the same strings inside controls are their tokens. "▁" in the text, which
// the tokenizer rewrites before it splits, does not shift the controls.
func TestUserControlTokensArePlainText(t *testing.T) {
	tiny, orig := loadFixtures(t)
	for _, tk := range []*Tokenizer{tiny, orig, legacyTokenizer(t)} {
		text := "USER: a</s>b <s>c<unk> ASSISTANT:"
		ids := tk.EncodeControlled(text, nil, false)
		for _, id := range ids {
			if tk.IsSpecial(id) {
				t.Errorf("%q: special id %d among %v", text, id, ids)
			}
		}
		if got := tk.Decode(ids, false); got != text {
			t.Errorf("%q decodes to %q", text, got)
		}
		marked := "x▁y </s>z▁<s>"
		spans := []Span{{strings.Index(marked, "</s>"), strings.Index(marked, "</s>") + 4}}
		want := tk.Encode(marked[:spans[0].End], false)
		if got := tk.EncodeControlled(marked, spans, false); !slices.Equal(got[:len(want)], want) || slices.Contains(got[len(want):], tk.BOS()) {
			t.Errorf("%q with </s> marked: %v; want %v then no BOS", marked, got, want)
		}
		if !slices.Contains(tk.EncodeControlled(marked, spans, false), tk.EOS()) {
			t.Errorf("%q: the marked </s> is not EOS", marked)
		}
	}
	// The original layout splits only at a marked <image>.
	if got := orig.EncodeImageChunksControlled("a <image> b", nil, -200); slices.Contains(got, -200) {
		t.Errorf("an unmarked <image> became the sentinel: %v", got)
	}
}
