package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// WriteVQAv2Submission writes the results file the VQAv2 evaluation server
// (EvalAI) takes, as LLaVA's scripts/convert_vqav2_for_submission.py makes it:
// [{"question_id": <int>, "answer": ...}] in the order of items, each answer
// passed through NormalizeEvalAI, and "" for a question without a prediction.
// The server wants every test2015 question even for the test-dev phase, so
// LLaVA passes the whole llava_vqav2_mscoco_test2015.jsonl set here.
func WriteVQAv2Submission(w io.Writer, items []Item, preds map[string]string) error {
	type result struct {
		QuestionID int64  `json:"question_id"`
		Answer     string `json:"answer"`
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
