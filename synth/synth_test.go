package synth

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/avq/avq/eval"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/tokenizer"
)

func TestSameSeedSameBytes(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	for _, d := range []struct {
		dir  string
		seed uint64
	}{{a, 11}, {b, 11}, {c, 12}} {
		if err := Write(d.dir, Options{Seed: d.seed, Count: 6}); err != nil {
			t.Fatal(err)
		}
	}
	files := []string{"questions.json", "annotations.json", "train.json", "scenes.json"}
	for i := range 6 {
		files = append(files, filepath.Join("images", ImageName(i)))
	}
	differ := 0
	for _, f := range files {
		x, err := os.ReadFile(filepath.Join(a, f))
		if err != nil {
			t.Fatal(err)
		}
		y, _ := os.ReadFile(filepath.Join(b, f))
		z, _ := os.ReadFile(filepath.Join(c, f))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with one seed", f)
		}
		if !bytes.Equal(x, z) {
			differ++
		}
	}
	if differ < len(files) {
		t.Errorf("seeds 11 and 12 share %d of %d files", len(files)-differ, len(files))
	}
	if err := Write(a, Options{Seed: 1, Count: 1}); err == nil {
		t.Error("writing over an existing set did not fail")
	}
}

// TestAnswersMatchTheScene checks every answer against the layout and the
// rendered pixels: what a question says is there is drawn there.
func TestAnswersMatchTheScene(t *testing.T) {
	kinds := map[string]int{}
	yes, no := 0, 0
	counts := map[int]bool{}
	const n = 300
	for id := range n {
		s := NewScene(5, id)
		if len(s.Objects) < 1 || len(s.Objects) > 6 || len(s.Code) < 3 || len(s.Code) > 4 {
			t.Fatalf("%v: out of range", s)
		}
		counts[len(s.Objects)] = true
		for _, q := range s.Questions() {
			kinds[q.Kind]++
			switch q.Kind {
			case KindCount:
				if q.Answer != strconv.Itoa(len(s.Objects)) {
					t.Errorf("%v: %q answered %q", s, q.Text, q.Answer)
				}
			case KindExist:
				if q.Answer == "yes" {
					yes++
				} else {
					no++
				}
			case KindRead:
				if q.Answer != s.Code {
					t.Errorf("%v: %q answered %q", s, q.Text, q.Answer)
				}
			}
		}
		if id < 20 { // pixels: each object's colour at its centre, ink on the label
			img := s.Render()
			for _, o := range s.Objects {
				c := img.RGBAAt(int(o.X), int(o.Y))
				p := palette[o.Color]
				if d := math.Abs(float64(c.R)-p[0]) + math.Abs(float64(c.G)-p[1]) + math.Abs(float64(c.B)-p[2]); d > 110 {
					t.Errorf("%v: %s at (%.0f, %.0f) is drawn %v", s, o.Name(), o.X, o.Y, c)
				}
			}
			dark := 0
			for y := s.Label.Min.Y; y < s.Label.Max.Y; y++ {
				for x := s.Label.Min.X; x < s.Label.Max.X; x++ {
					if img.RGBAAt(x, y).R < 100 {
						dark++
					}
				}
			}
			if dark < 40*len(s.Code) {
				t.Errorf("%v: only %d ink pixels on the label", s, dark)
			}
		}
	}
	for _, k := range Kinds {
		if kinds[k] < n/3 {
			t.Errorf("%d %q questions in %d scenes", kinds[k], k, n)
		}
	}
	if yes != no {
		t.Errorf("presence answers: %d yes, %d no", yes, no)
	}
	for c := 1; c <= 6; c++ {
		if !counts[c] {
			t.Errorf("no scene with %d objects", c)
		}
	}
}

// TestSetLoadsAsVQAv2 reads a set back with the evaluation harness.
func TestSetLoadsAsVQAv2(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, Options{Seed: 2, Count: 4}); err != nil {
		t.Fatal(err)
	}
	items, err := eval.LoadItems(eval.TaskVQAv2, filepath.Join(dir, "questions.json"), filepath.Join(dir, "annotations.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) < 4*3 {
		t.Fatalf("%d questions for 4 scenes", len(items))
	}
	for _, it := range items {
		if _, err := os.Stat(filepath.Join(dir, "images", it.Image)); err != nil {
			t.Fatalf("question %s: %v", it.QuestionID, err)
		}
		if len(it.Answers) != 10 || it.QuestionType == "" {
			t.Fatalf("question %s: %d answers, type %q", it.QuestionID, len(it.Answers), it.QuestionType)
		}
	}
}

// A code is read as its characters: LLaMA's SentencePiece vocabulary must
// give each one its own token after "ASSISTANT:", or the model would have to
// learn merges ("SM") instead of reading.
func TestCodesTokenizeCharacterByCharacter(t *testing.T) {
	tok, err := tokenizer.Load(testutil.Testdata("tiny-llava"))
	if err != nil {
		t.Fatal(err)
	}
	for id := range 2000 {
		code := NewScene(5, id).Code
		if got := tok.Encode(code, false); len(got) != len(code) {
			pieces := make([]string, len(got))
			for i, g := range got {
				pieces[i] = tok.Piece(g)
			}
			t.Fatalf("scene %d: code %q is %d tokens %q, want one per character", id, code, len(got), pieces)
		}
	}
}
