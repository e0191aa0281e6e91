package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runItems is a VQAv2 set whose score is worked out by hand (see
// TestVQAAccuracy and TestScoreVQAv2): q1 1, q2 0.9 (3 of 10 humans), q3 0
// ("three" becomes 3, the humans said 2), q4 1 ("two" becomes 2). Accuracy
// 2.9/4.
func runItems() []Item {
	return []Item{
		{QuestionID: "q1", Image: "1.jpg", Question: "Is it?", Answers: repeat("yes", 10), AnswerType: "yes/no"},
		{QuestionID: "q2", Image: "2.jpg", Question: "What color?", Answers: repeat("red", 3, "blue", 7), AnswerType: "other"},
		{QuestionID: "q3", Image: "3.jpg", Question: "How many?", Answers: repeat("2", 10), AnswerType: "number"},
		{QuestionID: "q4", Image: "4.jpg", Question: "How many now?", Answers: repeat("2", 9, "two", 1), AnswerType: "number"},
	}
}

const runAccuracy = 100 * 2.9 / 4

var runAnswers = map[string]string{"1.jpg": "yes", "2.jpg": " red\n", "3.jpg": "three", "4.jpg": "two"}

// fakeModel answers from runAnswers and records every successful answer. It
// fails, or cancels the run's context, once it has given failAfter answers.
type fakeModel struct {
	answered  map[string]int // image -> successful answers, across runs
	failAfter int            // < 0: never
	cancel    context.CancelFunc
	given     int
}

func (m *fakeModel) Answer(ctx context.Context, image, question string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if m.given == m.failAfter {
		if m.cancel != nil {
			m.cancel()
			return "", ctx.Err()
		}
		return "", errors.New("device lost")
	}
	if !strings.HasSuffix(question, ShortAnswerSuffix) {
		return "", errors.New("prompt without the task suffix: " + question)
	}
	m.given++
	m.answered[image]++
	return runAnswers[image], nil
}

// readLines returns the predictions in path, failing on any malformed line.
func readLines(t *testing.T, path string) []Prediction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Prediction
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var p Prediction
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		out = append(out, p)
	}
	return out
}

func checkFinal(t *testing.T, r Report, path string, answered map[string]int) {
	t.Helper()
	if !near(metric(t, r.Metrics, "accuracy"), runAccuracy) || r.Answered != 4 || r.Scored != 4 {
		t.Errorf("report %+v, want accuracy %v over 4", r, runAccuracy)
	}
	for _, it := range runItems() {
		if answered[it.Image] != 1 {
			t.Errorf("%s answered %d times, want once", it.QuestionID, answered[it.Image])
		}
	}
	lines := readLines(t, path)
	seen := map[string]bool{}
	for _, p := range lines {
		if seen[p.QuestionID] {
			t.Errorf("%s written twice", p.QuestionID)
		}
		seen[p.QuestionID] = true
	}
	if len(lines) != 4 {
		t.Errorf("%d lines, want 4", len(lines))
	}
}

func TestRunResumesAfterAnswererError(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sub", "preds.jsonl")
	answered := map[string]int{}
	_, err := Run(context.Background(), TaskVQAv2, runItems(), &fakeModel{answered: answered, failAfter: 2}, out, nil)
	if err == nil || !strings.Contains(err.Error(), "device lost") || !strings.Contains(err.Error(), "question q3") {
		t.Fatalf("first run: err %v, want the model's error naming q3", err)
	}
	if n := len(readLines(t, out)); n != 2 {
		t.Fatalf("after the failure the file has %d lines, want 2", n)
	}
	var calls [][2]int
	r, err := Run(context.Background(), TaskVQAv2, runItems(), &fakeModel{answered: answered, failAfter: -1}, out,
		func(done, total int) { calls = append(calls, [2]int{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	checkFinal(t, r, out, answered)
	// Progress starts at the resumed count.
	if want := [][2]int{{2, 4}, {3, 4}, {4, 4}}; len(calls) != 3 || calls[0] != want[0] || calls[2] != want[2] {
		t.Errorf("progress calls %v, want %v", calls, want)
	}
	// Stored answers are stripped, as model_vqa_loader.py stores them.
	if p := readLines(t, out)[1]; p.Answer != "red" || p.Prompt != "What color?"+ShortAnswerSuffix || p.Image != "2.jpg" {
		t.Errorf("line 2: %+v", p)
	}
}

func TestRunResumesAfterCancel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "preds.jsonl")
	answered := map[string]int{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Run(ctx, TaskVQAv2, runItems(), &fakeModel{answered: answered, failAfter: 3, cancel: cancel}, out, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: err %v, want context.Canceled", err)
	}
	if n := len(readLines(t, out)); n != 3 {
		t.Fatalf("after the cancel the file has %d lines, want 3", n)
	}
	r, err := Run(context.Background(), TaskVQAv2, runItems(), &fakeModel{answered: answered, failAfter: -1}, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkFinal(t, r, out, answered)

	// A finished file resumes to the same report without asking anything.
	r2, err := Run(context.Background(), TaskVQAv2, runItems(), &fakeModel{answered: answered, failAfter: 0}, out, nil)
	if err != nil || !near(metric(t, r2.Metrics, "accuracy"), runAccuracy) {
		t.Errorf("rerun of a finished file: %v, %+v", err, r2)
	}
}

func TestRunRedoesTruncatedLastLine(t *testing.T) {
	out := filepath.Join(t.TempDir(), "preds.jsonl")
	// q1 and q2 complete; q3 cut off mid-line by a crash, and cut exactly
	// before its newline would be just as incomplete.
	for _, tail := range []string{`{"question_id":"q3","image":"3.jpg","pro`,
		`{"question_id":"q3","image":"3.jpg","prompt":"How many?\nAnswer the question using a single word or phrase.","answer":"7"}`} {
		content := `{"question_id":"q1","image":"1.jpg","prompt":"Is it?\nAnswer the question using a single word or phrase.","answer":"yes"}
{"question_id":"q2","image":"2.jpg","prompt":"What color?\nAnswer the question using a single word or phrase.","answer":"red"}
` + tail
		if err := os.WriteFile(out, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		answered := map[string]int{"1.jpg": 1, "2.jpg": 1}
		r, err := Run(context.Background(), TaskVQAv2, runItems(), &fakeModel{answered: answered, failAfter: -1}, out, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkFinal(t, r, out, answered)
		if p := readLines(t, out)[2]; p.QuestionID != "q3" || p.Answer != "three" {
			t.Errorf("line 3 %+v, want q3 answered again", p)
		}
	}
}

func TestRunRefusesForeignFile(t *testing.T) {
	cases := []struct{ content, want string }{
		{`{"question_id":"x9","prompt":"?","answer":"a"}` + "\n", "preds.jsonl:1: question_id x9 is not in the question set"},
		{`{"question_id":"q1","prompt":"Is it?","answer":"yes"}` + "\n", "preds.jsonl:1: question_id q1 was asked"},
		{"\n" + `{"question_id":"q1","prompt":"Is it?` + `\nAnswer the question using a single word or phrase.","answer":"yes"}` + "\n" +
			`{"question_id":"q1","prompt":"Is it?` + `\nAnswer the question using a single word or phrase.","answer":"no"}` + "\n", "preds.jsonl:3: question_id q1 already answered on line 2"},
		{"not json\n", "preds.jsonl:1"},
		{`{"question_id":"q1","prompt":"p"}` + "\n", "no answer"},
	}
	for _, c := range cases {
		out := filepath.Join(t.TempDir(), "preds.jsonl")
		if err := os.WriteFile(out, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Run(context.Background(), TaskVQAv2, runItems(), &fakeModel{answered: map[string]int{}, failAfter: -1}, out, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("file %q: err %v, want %q", c.content, err, c.want)
		}
	}
}

func TestReadPredictionsLLaVAAnswers(t *testing.T) {
	// A LLaVA answers file (model_vqa_loader.py) names the answer "text" and
	// numbers its question ids.
	path := filepath.Join(t.TempDir(), "merge.jsonl")
	content := `{"question_id": 262148000, "prompt": "Where is he looking?\nAnswer the question using a single word or phrase.", "text": "Down", "answer_id": "x", "model_id": "llava-v1.5-7b", "metadata": {}}
{"question_id": 262148001, "prompt": "p", "text": "Table", "answer_id": "y", "model_id": "llava-v1.5-7b", "metadata": {}}
{"question_id": 2621`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	preds, err := ReadPredictions(path)
	if err != nil {
		t.Fatal(err)
	}
	m := PredictionMap(preds)
	if len(preds) != 2 || m["262148000"] != "Down" || m["262148001"] != "Table" {
		t.Errorf("got %+v", preds)
	}
}
