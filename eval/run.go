package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Answerer is the model as the evaluation sees it: one image, one prompt
// (the question with the task's suffix, see Task.Prompt), one answer. The
// conversation template, greedy decoding and image resolution are the
// implementation's business.
type Answerer interface {
	Answer(ctx context.Context, imagePath, question string) (string, error)
}

// Prediction is one line of a predictions file.
type Prediction struct {
	QuestionID string `json:"question_id"`
	Image      string `json:"image"`
	Prompt     string `json:"prompt"`
	Answer     string `json:"answer"`
}

// Run answers every item not yet answered in the predictions file at outPath,
// appending one JSON line per answer as it goes, then scores all of them.
//
// The file is the run's state. Each line is written with one write and
// synced, so after a crash at most the last line is incomplete; a restart
// discards that line (it has no final newline) and asks its question again,
// and skips every question already answered. A line for a question not in
// items, or with a different prompt, means the file belongs to another run:
// Run refuses it rather than mix the two.
//
// Answers are stored with surrounding white space removed, as
// llava/eval/model_vqa_loader.py stores outputs. progress, when not nil, is
// called with the number of questions answered so far (resumed ones
// included) once at the start and after each answer. An Answerer error or a
// cancelled ctx stops the run with an error; everything answered before it
// is kept.
func Run(ctx context.Context, task Task, items []Item, model Answerer, outPath string, progress func(done, total int)) (Report, error) {
	index := make(map[string]int, len(items))
	for i, it := range items {
		if _, dup := index[it.QuestionID]; dup {
			return Report{}, fmt.Errorf("eval: question_id %s appears twice in the question set", it.QuestionID)
		}
		index[it.QuestionID] = i
	}
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return Report{}, fmt.Errorf("eval: %w", err)
	}
	f, err := os.OpenFile(outPath, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return Report{}, fmt.Errorf("eval: %w", err)
	}
	defer f.Close()

	answers, err := resume(f, outPath, task, items, index)
	if err != nil {
		return Report{}, err
	}
	done, total := len(answers), len(items)
	if progress != nil {
		progress(done, total)
	}
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	for i := range items {
		it := &items[i]
		if _, ok := answers[it.QuestionID]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return Report{}, fmt.Errorf("eval: stopped after %d of %d questions: %w", done, total, err)
		}
		prompt := task.Prompt(it.Question)
		ans, err := model.Answer(ctx, it.Image, prompt)
		if err != nil {
			return Report{}, fmt.Errorf("eval: question %s (%d of %d answered): %w", it.QuestionID, done, total, err)
		}
		ans = pyStrip(ans)
		line.Reset()
		if err := enc.Encode(Prediction{QuestionID: it.QuestionID, Image: it.Image, Prompt: prompt, Answer: ans}); err != nil {
			return Report{}, fmt.Errorf("eval: question %s: %w", it.QuestionID, err)
		}
		if _, err := f.Write(line.Bytes()); err != nil {
			return Report{}, fmt.Errorf("eval: %w", err)
		}
		if err := f.Sync(); err != nil {
			return Report{}, fmt.Errorf("eval: %w", err)
		}
		answers[it.QuestionID] = ans
		done++
		if progress != nil {
			progress(done, total)
		}
	}
	if err := f.Close(); err != nil {
		return Report{}, fmt.Errorf("eval: %w", err)
	}
	return Score(task, items, answers), nil
}

// resume reads what an earlier run left in f, checks it belongs to this
// question set, and cuts off an incomplete last line.
func resume(f *os.File, name string, task Task, items []Item, index map[string]int) (map[string]string, error) {
	preds, lines, complete, err := parsePredictions(f, name)
	if err != nil {
		return nil, err
	}
	answers := make(map[string]string, len(items))
	for k, p := range preds {
		i, ok := index[p.QuestionID]
		if !ok {
			return nil, fmt.Errorf("eval: %s:%d: question_id %s is not in the question set; is this another task's file?", name, lines[k], p.QuestionID)
		}
		if want := task.Prompt(items[i].Question); p.Prompt != want {
			return nil, fmt.Errorf("eval: %s:%d: question_id %s was asked %q, this run asks %q", name, lines[k], p.QuestionID, p.Prompt, want)
		}
		answers[p.QuestionID] = p.Answer
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	if st.Size() > complete {
		if err := f.Truncate(complete); err != nil {
			return nil, fmt.Errorf("eval: %s: dropping the incomplete last line: %w", name, err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
	}
	return answers, nil
}

// ReadPredictions reads a predictions file: Run's own, or a LLaVA answers
// file (which names the answer "text"). An incomplete last line, the trace
// of an interrupted run, is ignored.
func ReadPredictions(path string) (preds []Prediction, err error) {
	err = withFile(path, func(r io.Reader) error {
		preds, _, _, err = parsePredictions(r, path)
		return err
	})
	return preds, err
}

// parsePredictions reads newline-terminated prediction lines, returning them
// with their line numbers and the byte length of the complete lines. A final
// line without its newline is left out of both. Blank lines are skipped; a
// question answered twice is an error.
func parsePredictions(r io.Reader, name string) (preds []Prediction, lines []int, complete int64, err error) {
	type record struct {
		QuestionID jsonID  `json:"question_id"`
		Image      string  `json:"image"`
		Prompt     string  `json:"prompt"`
		Answer     *string `json:"answer"`
		Text       *string `json:"text"`
	}
	seen := map[string]int{}
	lr := newLineReader(r)
	for {
		line, terminated, err := lr.next()
		if errors.Is(err, io.EOF) || (err == nil && !terminated) {
			return preds, lines, complete, nil
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("eval: %s: %w", name, err)
		}
		complete = lr.used
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, nil, 0, fmt.Errorf("eval: %s:%d: %w", name, lr.num, err)
		}
		id := string(rec.QuestionID)
		answer := rec.Answer
		if answer == nil {
			answer = rec.Text
		}
		switch {
		case id == "":
			return nil, nil, 0, fmt.Errorf("eval: %s:%d: no question_id", name, lr.num)
		case answer == nil:
			return nil, nil, 0, fmt.Errorf("eval: %s:%d: no answer", name, lr.num)
		}
		if first, dup := seen[id]; dup {
			return nil, nil, 0, fmt.Errorf("eval: %s:%d: question_id %s already answered on line %d", name, lr.num, id, first)
		}
		seen[id] = lr.num
		preds = append(preds, Prediction{QuestionID: id, Image: rec.Image, Prompt: rec.Prompt, Answer: *answer})
		lines = append(lines, lr.num)
	}
}

// PredictionMap indexes predictions by question id, the form Score takes.
func PredictionMap(preds []Prediction) map[string]string {
	m := make(map[string]string, len(preds))
	for _, p := range preds {
		m[p.QuestionID] = p.Answer
	}
	return m
}
