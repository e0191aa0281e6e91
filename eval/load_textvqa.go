package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// textVQARecord is one entry of TextVQA_0.5.1_<split>.json's "data".
type textVQARecord struct {
	QuestionID jsonID   `json:"question_id"`
	ImageID    string   `json:"image_id"`
	Question   string   `json:"question"`
	Answers    []string `json:"answers"`
	OCRTokens  []string `json:"ocr_tokens"`
}

// parseTextVQA reads an official TextVQA file. m4c_evaluator.py asserts ten
// answers per question, and so does this.
func parseTextVQA(r io.Reader, name string) ([]textVQARecord, error) {
	var recs []textVQARecord
	err := decodeDocument(r, name, func(dec *json.Decoder) error {
		return forEachKey(dec, func(key string) error {
			if key != "data" {
				return skipValue(dec)
			}
			return forEachElem(dec, func(i int) error {
				var rec textVQARecord
				if err := dec.Decode(&rec); err != nil {
					return fmt.Errorf("data[%d]: %w", i, err)
				}
				switch {
				case rec.QuestionID == "":
					return fmt.Errorf("data[%d]: no question_id", i)
				case rec.ImageID == "":
					return fmt.Errorf("data[%d] (question_id %s): no image_id", i, rec.QuestionID)
				case rec.Question == "":
					return fmt.Errorf("data[%d] (question_id %s): no question", i, rec.QuestionID)
				case rec.Answers != nil && len(rec.Answers) != 10:
					return fmt.Errorf("data[%d] (question_id %s): %d answers, want 10", i, rec.QuestionID, len(rec.Answers))
				}
				recs = append(recs, rec)
				return nil
			})
		})
	})
	return recs, err
}

// textVQAQuestion builds the question text for an official TextVQA record in
// the layout of LLaVA's llava_textvqa_val_v051_ocr.jsonl: the question, then a
// "Reference OCR token: " line listing the record's OCR tokens. LLaVA's file
// was made by a script that is not public, so its token list and casing may
// differ; use that file for numbers comparable with the LLaVA-1.5 paper.
func textVQAQuestion(rec *textVQARecord) string {
	if len(rec.OCRTokens) == 0 {
		return rec.Question
	}
	return rec.Question + "\nReference OCR token: " + strings.Join(rec.OCRTokens, ", ")
}

func loadTextVQA(questionsPath, annotationsPath string) ([]Item, error) {
	readOfficial := func(path string) (recs []textVQARecord, err error) {
		err = withFile(path, func(r io.Reader) error {
			recs, err = parseTextVQA(r, path)
			return err
		})
		return recs, err
	}
	if !isJSONLines(questionsPath) {
		if annotationsPath != "" {
			return nil, fmt.Errorf("eval: %s carries its answers; pass no annotations file with it", questionsPath)
		}
		recs, err := readOfficial(questionsPath)
		if err != nil {
			return nil, err
		}
		items := make([]Item, len(recs))
		for i := range recs {
			rec := &recs[i]
			items[i] = Item{QuestionID: string(rec.QuestionID), Image: rec.ImageID + ".jpg", Question: textVQAQuestion(rec), Answers: rec.Answers}
		}
		return items, nil
	}
	recs, err := readLLaVA(questionsPath)
	if err != nil {
		return nil, err
	}
	if annotationsPath == "" {
		return llavaItems(recs), nil
	}
	anns, err := readOfficial(annotationsPath)
	if err != nil {
		return nil, err
	}
	return joinTextVQA(recs, anns, questionsPath, annotationsPath)
}

// joinTextVQA pairs LLaVA's TextVQA questions with their annotations the way
// llava/eval/eval_textvqa.py does: LLaVA's question_id is the image id, so the
// key is (image id, lower-cased question recovered from the prompt). The
// items take the annotation's question_id, which is unique. Where several
// annotations share a key, they are paired with the questions in file order
// (eval_textvqa.py would score them all against the last one).
func joinTextVQA(recs []llavaRecord, anns []textVQARecord, questionsPath, annotationsPath string) ([]Item, error) {
	type key struct{ image, question string }
	byKey := map[key][]int{}
	for i := range anns {
		k := key{anns[i].ImageID, pyLower(anns[i].Question)}
		byKey[k] = append(byKey[k], i)
	}
	items := make([]Item, len(recs))
	for i, rec := range recs {
		q, err := textVQAPromptQuestion(rec.Text)
		if err != nil {
			return nil, fmt.Errorf("eval: %s:%d: %w", questionsPath, rec.line, err)
		}
		k := key{string(rec.QuestionID), q}
		idx := byKey[k]
		if len(idx) == 0 {
			return nil, fmt.Errorf("eval: %s: no annotation for image %s, question %q (%s:%d)", annotationsPath, k.image, k.question, questionsPath, rec.line)
		}
		byKey[k] = idx[1:]
		a := &anns[idx[0]]
		items[i] = Item{QuestionID: string(a.QuestionID), Image: rec.Image, Question: rec.Text, Answers: a.Answers}
	}
	return items, nil
}

// textVQAPromptQuestion recovers the question from a LLaVA TextVQA prompt, as
// prompt_processor in llava/eval/eval_textvqa.py does, lower-cased.
func textVQAPromptQuestion(prompt string) (string, error) {
	lines := strings.Split(prompt, "\n")
	var q string
	switch {
	case strings.HasPrefix(prompt, "OCR tokens: "):
		// re.search(r"Question: (.*?) Short answer:", prompt, re.DOTALL)
		i := strings.Index(prompt, "Question: ")
		if i < 0 {
			return "", errors.New("OCR-tokens prompt without \"Question: \"")
		}
		rest := prompt[i+len("Question: "):]
		j := strings.Index(rest, " Short answer:")
		if j < 0 {
			return "", errors.New("OCR-tokens prompt without \" Short answer:\"")
		}
		q = rest[:j]
	case strings.Contains(prompt, "Reference OCR token: ") && len(lines) == 3:
		q = lines[0]
		if strings.HasPrefix(prompt, "Reference OCR token:") {
			q = lines[1]
		}
	case len(lines) == 2:
		q = lines[0]
	default:
		return "", fmt.Errorf("prompt has %d lines; eval_textvqa.py's prompt_processor cannot find its question", len(lines))
	}
	return pyLower(q), nil
}
