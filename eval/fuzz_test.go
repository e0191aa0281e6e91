package eval

import (
	"bytes"
	"strings"
	"testing"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/.

// FuzzParsePredictions feeds arbitrary bytes to the predictions reader that
// Run resumes from: it must return an error or a consistent result, never
// panic, and never count an unterminated line as complete.
func FuzzParsePredictions(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		preds, lines, complete, err := parsePredictions(bytes.NewReader(data), "fuzz.jsonl")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "eval: fuzz.jsonl") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if complete < 0 || complete > int64(len(data)) || (complete > 0 && data[complete-1] != '\n') {
			t.Fatalf("complete length %d of %d bytes does not end a line", complete, len(data))
		}
		if bytes.IndexByte(data[complete:], '\n') >= 0 {
			t.Fatalf("a terminated line after the complete length %d", complete)
		}
		if len(preds) != len(lines) {
			t.Fatalf("%d predictions, %d line numbers", len(preds), len(lines))
		}
		seen := map[string]bool{}
		for _, p := range preds {
			if p.QuestionID == "" || seen[p.QuestionID] {
				t.Fatalf("empty or repeated question id %q", p.QuestionID)
			}
			seen[p.QuestionID] = true
		}
	})
}

// FuzzLoadQuestions feeds arbitrary bytes to every question and annotation
// parser: errors are fine, panics are not, and what parses must be usable by
// the scorers.
func FuzzLoadQuestions(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if recs, err := parseLLaVA(bytes.NewReader(data), "q.jsonl"); err == nil {
			for _, r := range recs {
				if r.QuestionID == "" || r.Image == "" || r.Text == "" || r.line < 1 {
					t.Fatalf("incomplete record accepted: %+v", r)
				}
				_, _ = textVQAPromptQuestion(r.Text)
			}
		}
		if items, err := parseVQAQuestions(bytes.NewReader(data), "q.json"); err == nil {
			for _, it := range items {
				if it.QuestionID == "" || !strings.HasPrefix(it.Image, "COCO_") {
					t.Fatalf("bad item accepted: %+v", it)
				}
			}
		}
		if truth, err := parseVQAAnnotations(bytes.NewReader(data), "a.json"); err == nil {
			for _, it := range truth {
				if acc := VQAAccuracy("yes", it.Answers); acc < 0 || acc > 1 {
					t.Fatalf("accuracy %v", acc)
				}
			}
		}
		if items, err := parseGQAQuestions(bytes.NewReader(data), "g.json"); err == nil {
			for _, it := range items {
				if it.QuestionID == "" || it.Image == ".jpg" || (it.Answers != nil && len(it.Answers) != 1) {
					t.Fatalf("bad item accepted: %+v", it)
				}
			}
		}
		if recs, err := parseTextVQA(bytes.NewReader(data), "t.json"); err == nil {
			for i := range recs {
				if recs[i].Answers != nil {
					if acc := TextVQAAccuracy("yes", recs[i].Answers); acc < 0 || acc > 1 {
						t.Fatalf("accuracy %v", acc)
					}
				}
				_ = textVQAQuestion(&recs[i])
			}
		}
	})
}

// FuzzNormalize checks properties of the answer normalisation and the
// accuracy rules on arbitrary text.
func FuzzNormalize(f *testing.F) {
	f.Fuzz(func(t *testing.T, pred, gt string) {
		for _, n := range []string{NormalizeVQA(pred), NormalizeEvalAI(pred)} {
			// Both end by joining white-space-separated words with one space.
			if n != strings.Join(strings.FieldsFunc(n, isPySpace), " ") {
				t.Fatalf("normalised %q to %q, which is not single-spaced words", pred, n)
			}
		}
		ten := []string{gt, gt, gt, gt, gt, gt, gt, gt, gt, gt}
		// Ten identical answers and the same prediction: every human is
		// matched by the nine others.
		if acc := VQAAccuracy(gt, ten); acc != 1 {
			t.Fatalf("VQAAccuracy(%q, ten times itself) = %v", gt, acc)
		}
		if acc := TextVQAAccuracy(gt, ten); acc != 1 {
			t.Fatalf("TextVQAAccuracy(%q, ten times itself) = %v", gt, acc)
		}
		mixed := []string{gt, pred, gt, pred, gt, pred, gt, pred, gt, pred}
		for _, acc := range []float64{VQAAccuracy(pred, mixed), TextVQAAccuracy(pred, mixed)} {
			if acc < 0 || acc > 1 {
				t.Fatalf("accuracy %v outside [0, 1]", acc)
			}
		}
		_ = POPEAnswerIsYes(pred)
		_ = GQAMatch(pred, gt)
	})
}
