package synth

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// Subtype is the data_subtype of the questions file; images are named
// COCO_<Subtype>_<12-digit image id>.png as the VQAv2 loader expects.
const Subtype = "synth"

// Options say which set to make.
type Options struct {
	Seed  uint64
	Count int // scenes (each asks up to five questions)
	// Progress, if set, is called after each scene is written with the
	// number done so far.
	Progress func(done int)
}

// ImageName is the file name of scene id's image.
func ImageName(id int) string { return fmt.Sprintf("COCO_%s_%012d.png", Subtype, id+1) }

// LLaVAPromptSuffix is what LLaVA-1.5 appends to a short-answer VQA question,
// in training data and in its evaluation prompts alike.
const LLaVAPromptSuffix = "\nAnswer the question using a single word or phrase."

// Write makes the set in dir: images/, questions.json and annotations.json in
// the VQAv2 formats (question kind in question_type, ten equal annotator
// answers), train.json in LLaVA's conversation format, and scenes.json with
// each scene's layout (objects, code, label box) for training recipes that
// want more than the answers. It refuses a dir that already holds a set.
func Write(dir string, opt Options) error {
	if opt.Count <= 0 {
		return fmt.Errorf("synth: count %d: at least one scene is needed", opt.Count)
	}
	if _, err := os.Stat(filepath.Join(dir, "questions.json")); err == nil {
		return fmt.Errorf("synth: %s already holds a set (questions.json); choose an empty folder", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	scenes := make([]*Scene, opt.Count)
	for i := range scenes {
		scenes[i] = NewScene(opt.Seed, i)
	}
	if err := writeImages(dir, scenes, opt.Progress); err != nil {
		return err
	}
	var qs []Question
	for _, s := range scenes {
		qs = append(qs, s.Questions()...)
	}
	if err := writeVQA(dir, opt.Seed, qs); err != nil {
		return err
	}
	if err := writeScenes(filepath.Join(dir, "scenes.json"), scenes); err != nil {
		return err
	}
	return writeTrain(filepath.Join(dir, "train.json"), qs)
}

// writeImages renders and encodes scenes on every core; each image depends
// only on (seed, id), so the files do not depend on the scheduling.
func writeImages(dir string, scenes []*Scene, progress func(int)) error {
	var (
		mu    sync.Mutex
		done  int
		first error
		wg    sync.WaitGroup
		next  = make(chan *Scene)
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				err := writePNG(filepath.Join(dir, "images", ImageName(s.ID)), s)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				done++
				if progress != nil {
					progress(done)
				}
				mu.Unlock()
			}
		}()
	}
	for _, s := range scenes {
		next <- s
	}
	close(next)
	wg.Wait()
	return first
}

func writePNG(path string, s *Scene) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	err = png.Encode(f, s.Render())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("synth: writing %s: %w", path, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	err = errors.Join(enc.Encode(v), w.Flush(), f.Close())
	if err != nil {
		return fmt.Errorf("synth: writing %s: %w", path, err)
	}
	return nil
}

func writeVQA(dir string, seed uint64, qs []Question) error {
	type question struct {
		ImageID    int64  `json:"image_id"`
		Question   string `json:"question"`
		QuestionID int64  `json:"question_id"`
	}
	type answer struct {
		Answer     string `json:"answer"`
		Confidence string `json:"answer_confidence"`
		ID         int    `json:"answer_id"`
	}
	type annotation struct {
		QuestionID   int64    `json:"question_id"`
		ImageID      int64    `json:"image_id"`
		QuestionType string   `json:"question_type"`
		AnswerType   string   `json:"answer_type"`
		MultipleCh   string   `json:"multiple_choice_answer"`
		Answers      []answer `json:"answers"`
	}
	info := map[string]any{"description": fmt.Sprintf("avq synth --seed %d", seed), "seed": seed}
	questions := make([]question, len(qs))
	anns := make([]annotation, len(qs))
	for i, q := range qs {
		questions[i] = question{ImageID: q.ImageID, Question: q.Text, QuestionID: q.ID}
		a := annotation{QuestionID: q.ID, ImageID: q.ImageID, QuestionType: q.Kind, AnswerType: q.AnswerType, MultipleCh: q.Answer}
		for k := range 10 {
			a.Answers = append(a.Answers, answer{Answer: q.Answer, Confidence: "yes", ID: k + 1})
		}
		anns[i] = a
	}
	if err := writeJSON(filepath.Join(dir, "questions.json"), map[string]any{
		"info": info, "task_type": "Open-Ended", "data_type": "synth", "data_subtype": Subtype,
		"image_format": "png", "questions": questions,
	}); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, "annotations.json"), map[string]any{
		"info": info, "data_type": "synth", "data_subtype": Subtype, "annotations": anns,
	})
}

// writeTrain writes LLaVA's instruction-tuning format, one conversation a
// question, prompted as LLaVA-1.5 prompts short-answer VQA.
func writeTrain(path string, qs []Question) error {
	type turn struct {
		From  string `json:"from"`
		Value string `json:"value"`
	}
	type conv struct {
		ID            string `json:"id"`
		Image         string `json:"image"`
		Conversations []turn `json:"conversations"`
	}
	out := make([]conv, len(qs))
	for i, q := range qs {
		out[i] = conv{
			ID:    fmt.Sprint(q.ID),
			Image: "images/" + ImageName(int(q.ImageID-1)),
			Conversations: []turn{
				{From: "human", Value: "<image>\n" + q.Text + LLaVAPromptSuffix},
				{From: "gpt", Value: q.Answer},
			},
		}
	}
	return writeJSON(path, out)
}

func writeScenes(path string, scenes []*Scene) error {
	type object struct {
		Shape string  `json:"shape"`
		Color string  `json:"color"`
		Size  string  `json:"size"`
		X     float64 `json:"x"`
		Y     float64 `json:"y"`
		R     float64 `json:"r"`
	}
	type scene struct {
		ImageID int64    `json:"image_id"`
		Image   string   `json:"image"`
		Code    string   `json:"code"`
		Label   [4]int   `json:"label"` // x0, y0, x1, y1
		Objects []object `json:"objects"`
	}
	out := make([]scene, len(scenes))
	for i, s := range scenes {
		l := s.Label
		out[i] = scene{ImageID: int64(s.ID + 1), Image: "images/" + ImageName(s.ID), Code: s.Code, Label: [4]int{l.Min.X, l.Min.Y, l.Max.X, l.Max.Y}}
		for _, o := range s.Objects {
			out[i].Objects = append(out[i].Objects, object{o.Shape, o.Color, o.Size, o.X, o.Y, o.R})
		}
	}
	return writeJSON(path, out)
}
