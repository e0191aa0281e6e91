package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// WriteVQAv2Submission writes the results file the VQAv2 evaluation server
// (EvalAI) takes, as LLaVA's scripts/convert_vqav2_for_submission.py makes it:
// [{"question_id": <int>, "answer": ...}] in the order of items, each answer
// passed through NormalizeEvalAI, and "" for a question without a prediction.
// The server wants every test2015 question even for the test-dev phase, so
// LLaVA passes the whole llava_vqav2_mscoco_test2015.jsonl set here.
//
// A prediction for a question that items lack is an error (LLaVA's script
// drops it silently): it means items is not the set the predictions were
// made from, and the server would score the file wrongly.
func WriteVQAv2Submission(w io.Writer, items []Item, preds map[string]string) error {
	type result struct {
		QuestionID int64  `json:"question_id"`
		Answer     string `json:"answer"`
	}
	listed := make(map[string]bool, len(items))
	for _, it := range items {
		listed[it.QuestionID] = true
	}
	var missing []string
	for id := range preds {
		if !listed[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("eval: %d predicted questions are not in the submission's question list (the first: question_id %s)", len(missing), missing[0])
	}
	results := make([]result, len(items))
	for i, it := range items {
		id, err := strconv.ParseInt(it.QuestionID, 10, 64)
		if err != nil {
			return fmt.Errorf("eval: question_id %q is not a VQAv2 (integer) question id", it.QuestionID)
		}
		results[i].QuestionID = id
		if pred, ok := preds[it.QuestionID]; ok {
			results[i].Answer = NormalizeEvalAI(pred)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(results); err != nil {
		return fmt.Errorf("eval: writing the VQAv2 submission: %w", err)
	}
	return nil
}
