package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// LoadItems reads a task's questions and, when annotationsPath is not empty,
// their ground truth. Question files ending in .jsonl are LLaVA's JSON-lines
// files ({"question_id", "image", "text", "category"}); other files are the
// benchmark's own format:
//
//   - VQAv2: questions v2_OpenEnded_mscoco_<split>_questions.json or LLaVA's
//     llava_vqav2_mscoco_test-dev2015.jsonl; annotations
//     v2_mscoco_<split>_annotations.json (none exist for test-dev).
//   - GQA: testdev_balanced_questions.json, which carries the answers, or
//     llava_gqa_testdev_balanced.jsonl with that file as annotations.
//   - TextVQA: TextVQA_0.5.1_val.json, which carries the answers, or
//     llava_textvqa_val_v051_ocr.jsonl with that file as annotations (LLaVA's
//     file uses image ids as question ids; the items take the annotation's).
//   - POPE: always JSON lines: a coco_pope_<category>.json label file
//     ({"question_id", "image", "text", "label"}) on its own, or
//     llava_pope_test.jsonl with annotations the directory holding the
//     coco_pope_*.json files (LLaVA's --annotation-dir) or one such file.
//
// Question ids must be unique within the set.
func LoadItems(task Task, questionsPath, annotationsPath string) ([]Item, error) {
	var items []Item
	var err error
	switch task {
	case TaskVQAv2:
		items, err = loadVQAv2(questionsPath, annotationsPath)
	case TaskGQA:
		items, err = loadGQA(questionsPath, annotationsPath)
	case TaskTextVQA:
		items, err = loadTextVQA(questionsPath, annotationsPath)
	case TaskPOPE:
		items, err = loadPOPE(questionsPath, annotationsPath)
	default:
		return nil, fmt.Errorf("eval: unknown task %q", task)
	}
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if seen[it.QuestionID] {
			return nil, fmt.Errorf("eval: %s: question_id %s appears twice", questionsPath, it.QuestionID)
		}
		seen[it.QuestionID] = true
	}
	return items, nil
}

func isJSONLines(path string) bool { return strings.EqualFold(filepath.Ext(path), ".jsonl") }

// llavaRecord is one line of a LLaVA question file or a POPE label file.
type llavaRecord struct {
	QuestionID jsonID `json:"question_id"`
	Image      string `json:"image"`
	Text       string `json:"text"`
	Category   string `json:"category"`
	Label      string `json:"label"`
	line       int
}

// parseLLaVA reads a JSON-lines question file.
func parseLLaVA(r io.Reader, name string) ([]llavaRecord, error) {
	var recs []llavaRecord
	err := readJSONLines(r, name, func(num int, rec *llavaRecord) error {
		switch {
		case rec.QuestionID == "":
			return errors.New("no question_id")
		case rec.Image == "":
			return errors.New("no image")
		case rec.Text == "":
			return errors.New("no text")
		}
		rec.line = num
		recs = append(recs, *rec)
		return nil
	})
	return recs, err
}

func readLLaVA(path string) (recs []llavaRecord, err error) {
	err = withFile(path, func(r io.Reader) error {
		recs, err = parseLLaVA(r, path)
		return err
	})
	return recs, err
}

func llavaItems(recs []llavaRecord) []Item {
	items := make([]Item, len(recs))
	for i, rec := range recs {
		items[i] = Item{QuestionID: string(rec.QuestionID), Image: rec.Image, Question: rec.Text}
	}
	return items
}

func loadVQAv2(questionsPath, annotationsPath string) ([]Item, error) {
	var items []Item
	if isJSONLines(questionsPath) {
		recs, err := readLLaVA(questionsPath)
		if err != nil {
			return nil, err
		}
		items = llavaItems(recs)
	} else if err := withFile(questionsPath, func(r io.Reader) (err error) {
		items, err = parseVQAQuestions(r, questionsPath)
		return err
	}); err != nil {
		return nil, err
	}
	if annotationsPath == "" {
		return items, nil
	}
	var truth map[string]Item
	if err := withFile(annotationsPath, func(r io.Reader) (err error) {
		truth, err = parseVQAAnnotations(r, annotationsPath)
		return err
	}); err != nil {
		return nil, err
	}
	for i := range items {
		t, ok := truth[items[i].QuestionID]
		if !ok {
			return nil, fmt.Errorf("eval: %s: no annotation for question_id %s of %s", annotationsPath, items[i].QuestionID, questionsPath)
		}
		items[i].Answers, items[i].AnswerType, items[i].QuestionType = t.Answers, t.AnswerType, t.QuestionType
	}
	return items, nil
}

// parseVQAQuestions reads an official VQA questions file:
// {"data_subtype": "val2014", "questions": [{"question_id", "image_id",
// "question"}]}. Image names follow COCO: COCO_<split>_<12-digit id>.jpg,
// where test-dev2015 questions use test2015 images. A set whose images are
// not JPEGs (avq synth's PNGs) says so with "image_format": "png".
func parseVQAQuestions(r io.Reader, name string) ([]Item, error) {
	type question struct {
		QuestionID jsonID `json:"question_id"`
		ImageID    *int64 `json:"image_id"`
		Question   string `json:"question"`
	}
	var subtype string
	format := "jpg"
	var qs []question
	err := decodeDocument(r, name, func(dec *json.Decoder) error {
		return forEachKey(dec, func(key string) error {
			switch key {
			case "data_subtype":
				return dec.Decode(&subtype)
			case "image_format":
				if err := dec.Decode(&format); err != nil {
					return fmt.Errorf("image_format: %w", err)
				}
				if format != "jpg" && format != "png" {
					return fmt.Errorf("image_format %q: jpg or png", format)
				}
				return nil
			case "questions":
				return forEachElem(dec, func(i int) error {
					var q question
					if err := dec.Decode(&q); err != nil {
						return fmt.Errorf("questions[%d]: %w", i, err)
					}
					switch {
					case q.QuestionID == "":
						return fmt.Errorf("questions[%d]: no question_id", i)
					case q.ImageID == nil || *q.ImageID < 0:
						return fmt.Errorf("questions[%d] (question_id %s): no valid image_id", i, q.QuestionID)
					case q.Question == "":
						return fmt.Errorf("questions[%d] (question_id %s): no question", i, q.QuestionID)
					}
					qs = append(qs, q)
					return nil
				})
			}
			return skipValue(dec)
		})
	})
	if err != nil {
		return nil, err
	}
	if subtype == "" && len(qs) > 0 {
		return nil, fmt.Errorf("eval: %s: no data_subtype, which names the COCO image split", name)
	}
	split := subtype
	if split == "test-dev2015" {
		split = "test2015"
	}
	items := make([]Item, len(qs))
	for i, q := range qs {
		items[i] = Item{
			QuestionID: string(q.QuestionID),
			Image:      fmt.Sprintf("COCO_%s_%012d.%s", split, *q.ImageID, format),
			Question:   q.Question,
		}
	}
	return items, nil
}

// parseVQAAnnotations reads an official VQA annotations file:
// {"annotations": [{"question_id", "answers": [{"answer"}], "answer_type",
// "question_type", ...}]}, keyed by question id.
func parseVQAAnnotations(r io.Reader, name string) (map[string]Item, error) {
	type annotation struct {
		QuestionID jsonID `json:"question_id"`
		Answers    []struct {
			Answer *string `json:"answer"`
		} `json:"answers"`
		AnswerType   string `json:"answer_type"`
		QuestionType string `json:"question_type"`
	}
	truth := map[string]Item{}
	err := decodeDocument(r, name, func(dec *json.Decoder) error {
		return forEachKey(dec, func(key string) error {
			if key != "annotations" {
				return skipValue(dec)
			}
			return forEachElem(dec, func(i int) error {
				var a annotation
				if err := dec.Decode(&a); err != nil {
					return fmt.Errorf("annotations[%d]: %w", i, err)
				}
				id := string(a.QuestionID)
				switch {
				case id == "":
					return fmt.Errorf("annotations[%d]: no question_id", i)
				case len(a.Answers) == 0:
					return fmt.Errorf("annotations[%d] (question_id %s): no answers", i, id)
				}
				if _, dup := truth[id]; dup {
					return fmt.Errorf("annotations[%d]: question_id %s annotated twice", i, id)
				}
				answers := make([]string, len(a.Answers))
				for j, ans := range a.Answers {
					if ans.Answer == nil {
						return fmt.Errorf("annotations[%d] (question_id %s): answers[%d] has no answer", i, id, j)
					}
					answers[j] = *ans.Answer
				}
				truth[id] = Item{Answers: answers, AnswerType: a.AnswerType, QuestionType: a.QuestionType}
				return nil
			})
		})
	})
	return truth, err
}

func loadGQA(questionsPath, annotationsPath string) ([]Item, error) {
	readGQA := func(path string) (items []Item, err error) {
		err = withFile(path, func(r io.Reader) error {
			items, err = parseGQAQuestions(r, path)
			return err
		})
		return items, err
	}
	if !isJSONLines(questionsPath) {
		if annotationsPath != "" {
			return nil, fmt.Errorf("eval: %s carries its answers; pass no annotations file with it", questionsPath)
		}
		return readGQA(questionsPath)
	}
	recs, err := readLLaVA(questionsPath)
	if err != nil {
		return nil, err
	}
	items := llavaItems(recs)
	if annotationsPath == "" {
		return items, nil
	}
	gold, err := readGQA(annotationsPath)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*Item, len(gold))
	for i := range gold {
		byID[gold[i].QuestionID] = &gold[i]
	}
	for i := range items {
		g := byID[items[i].QuestionID]
		if g == nil {
			return nil, fmt.Errorf("eval: %s: no balanced question %s (line %d of %s)", annotationsPath, items[i].QuestionID, recs[i].line, questionsPath)
		}
		items[i].Answers, items[i].AnswerType, items[i].QuestionType = g.Answers, g.AnswerType, g.QuestionType
	}
	return items, nil
}

// parseGQAQuestions reads an official GQA questions file: an object from
// question id to {"imageId", "question", "answer", "types": {"structural"},
// "isBalanced"}. As the official eval.py scores only balanced questions,
// questions marked "isBalanced": false are left out. The answer type is "open"
// for structural type "query" and "binary" otherwise, as eval.py splits them.
func parseGQAQuestions(r io.Reader, name string) ([]Item, error) {
	type question struct {
		ImageID  string  `json:"imageId"`
		Question string  `json:"question"`
		Answer   *string `json:"answer"`
		Types    struct {
			Structural string `json:"structural"`
		} `json:"types"`
		IsBalanced *bool `json:"isBalanced"`
	}
	var items []Item
	err := decodeDocument(r, name, func(dec *json.Decoder) error {
		return forEachKey(dec, func(id string) error {
			var q question
			if err := dec.Decode(&q); err != nil {
				return fmt.Errorf("question %q: %w", id, err)
			}
			switch {
			case id == "":
				return errors.New("empty question id")
			case q.IsBalanced != nil && !*q.IsBalanced:
				return nil
			case q.ImageID == "":
				return fmt.Errorf("question %q: no imageId", id)
			case q.Question == "":
				return fmt.Errorf("question %q: no question", id)
			}
			it := Item{QuestionID: id, Image: q.ImageID + ".jpg", Question: q.Question, QuestionType: q.Types.Structural}
			if q.Answer != nil {
				it.Answers = []string{*q.Answer}
			}
			if it.QuestionType != "" {
				it.AnswerType = "binary"
				if it.QuestionType == "query" {
					it.AnswerType = "open"
				}
			}
			items = append(items, it)
			return nil
		})
	})
	return items, err
}
