package eval

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func metric(t *testing.T, ms []Metric, name string) float64 {
	t.Helper()
	for _, m := range ms {
		if m.Name == name {
			return m.Value
		}
	}
	t.Fatalf("no metric %q in %v", name, ms)
	return 0
}

func group(t *testing.T, r Report, kind, name string) Group {
	t.Helper()
	for _, g := range r.Groups {
		if g.Kind == kind && g.Name == name {
			return g
		}
	}
	t.Fatalf("no %s group %q in %+v", kind, name, r.Groups)
	return Group{}
}

func TestScoreVQAv2(t *testing.T) {
	items := []Item{
		{QuestionID: "1", Answers: repeat("yes", 10), AnswerType: "yes/no", QuestionType: "is the"},
		{QuestionID: "2", Answers: repeat("red", 3, "blue", 7), AnswerType: "other", QuestionType: "what color"},
		{QuestionID: "3", Answers: repeat("t-shirt", 10), AnswerType: "other", QuestionType: "what is"},
		{QuestionID: "4", Answers: repeat("2", 9, "two", 1), AnswerType: "number", QuestionType: "how many"},
		{QuestionID: "5", Answers: repeat("no", 10), AnswerType: "yes/no", QuestionType: "is the"},
		{QuestionID: "6"}, // no ground truth (test-dev style)
	}
	preds := map[string]string{"1": "Yes", "2": "Red.", "3": "t-shirt", "4": "two", "6": "blue"}
	r := Score(TaskVQAv2, items, preds)
	// Each answer first goes through the EvalAI processor (LLaVA's upload
	// step), then the official rule:
	//   1: "Yes" -> "yes", equal to all ten: 1 (the raw rule would give 0);
	//   2: "Red." -> "red", 3 of 10 humans: 0.9;
	//   3: "t-shirt" -> "t shirt"; the ten identical answers stay "t-shirt": 0;
	//   4: "two" -> "2", all ten normalise to 2: 1;
	//   5 is unanswered, 6 has no ground truth.
	if r.Questions != 6 || r.Answered != 5 || r.Scored != 4 {
		t.Fatalf("questions/answered/scored = %d/%d/%d, want 6/5/4", r.Questions, r.Answered, r.Scored)
	}
	checks := []struct {
		got, want float64
		what      string
	}{
		{metric(t, r.Metrics, "accuracy"), 100 * 2.9 / 4, "overall: (1 + 0.9 + 0 + 1)/4"},
		{metric(t, group(t, r, "answer_type", "number").Metrics, "accuracy"), 100, "number: question 4"},
		{metric(t, group(t, r, "answer_type", "other").Metrics, "accuracy"), 45, "other: (0.9 + 0)/2"},
		{metric(t, group(t, r, "answer_type", "yes/no").Metrics, "accuracy"), 100, "yes/no: only question 1 answered"},
		{metric(t, group(t, r, "question_type", "what is").Metrics, "accuracy"), 0, "what is: question 3"},
	}
	for _, c := range checks {
		if !near(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	if g := group(t, r, "answer_type", "other"); g.N != 2 {
		t.Errorf("other group n = %d, want 2", g.N)
	}
	// Groups sort by kind, then name.
	var order []string
	for _, g := range r.Groups {
		order = append(order, g.Kind+":"+g.Name)
	}
	want := "answer_type:number answer_type:other answer_type:yes/no " +
		"question_type:how many question_type:is the question_type:what color question_type:what is"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("group order %q, want %q", got, want)
	}
	s := r.String()
	for _, frag := range []string{"vqav2: 6 questions, 5 answered, 4 scored", "partial", "accuracy  72.50", "yes/no"} {
		if !strings.Contains(s, frag) {
			t.Errorf("report lacks %q:\n%s", frag, s)
		}
	}
}

func TestWriteVQAv2Submission(t *testing.T) {
	items := []Item{{QuestionID: "262144000"}, {QuestionID: "262144001"}, {QuestionID: "262144002"}}
	var b strings.Builder
	// "A" loses its only word, an article, as in haotian-liu/LLaVA#618; a
	// question without a prediction gets "".
	if err := WriteVQAv2Submission(&b, items, map[string]string{"262144000": "Yes.", "262144001": "A"}); err != nil {
		t.Fatal(err)
	}
	want := `[{"question_id":262144000,"answer":"yes"},{"question_id":262144001,"answer":""},{"question_id":262144002,"answer":""}]` + "\n"
	if b.String() != want {
		t.Errorf("got %s, want %s", b.String(), want)
	}
	if err := WriteVQAv2Submission(&b, []Item{{QuestionID: "n123"}}, nil); err == nil {
		t.Error("a non-integer question id was accepted")
	}
	err := WriteVQAv2Submission(&b, items, map[string]string{"262144000": "yes", "9": "no", "10": "two"})
	if err == nil || !strings.Contains(err.Error(), "2 predicted questions") || !strings.Contains(err.Error(), "question_id 10") {
		t.Errorf("predictions outside the question list: %v", err)
	}
}

func TestScoreGQA(t *testing.T) {
	items := []Item{
		{QuestionID: "a", Answers: []string{"yes"}, AnswerType: "binary", QuestionType: "verify"},
		{QuestionID: "b", Answers: []string{"left"}, AnswerType: "open", QuestionType: "query"},
		{QuestionID: "c", Answers: []string{"table"}, AnswerType: "open", QuestionType: "query"},
	}
	r := Score(TaskGQA, items, map[string]string{"a": "Yes.", "b": "Left", "c": "the table"})
	// a and b match after rstrip('.').lower(); c keeps its article.
	if got := metric(t, r.Metrics, "accuracy"); !near(got, 200.0/3) {
		t.Errorf("accuracy %v, want 66.67 (2 of 3)", got)
	}
	if got := metric(t, group(t, r, "answer_type", "open").Metrics, "accuracy"); !near(got, 50) {
		t.Errorf("open accuracy %v, want 50", got)
	}
}

func TestScorePOPE(t *testing.T) {
	var items []Item
	preds := map[string]string{}
	add := func(category, label, pred string, n int) {
		for range n {
			id := category + "-" + string(rune('a'+len(items)))
			items = append(items, Item{QuestionID: id, Label: label, Category: category})
			preds[id] = pred
		}
	}
	// adversarial: TP 3, FP 1, TN 4, FN 2 (see TestConfusionMetrics).
	add("adversarial", "yes", "Yes, there is.", 3)
	add("adversarial", "no", "Yes", 1)
	add("adversarial", "no", "No.", 4)
	add("adversarial", "yes", "There is no such thing", 2)
	// random: TP 2, TN 2: every metric 1.
	add("random", "yes", "yes", 2)
	add("random", "no", "no", 2)
	r := Score(TaskPOPE, items, preds)

	// f1_category_mean = (2/3 + 1)/2 = 5/6. Pooled: TP 5, FP 1, TN 6, FN 2
	// (N 14): accuracy 11/14, precision 5/6, recall 5/7,
	// F1 = 2*(5/6)*(5/7) / (5/6 + 5/7) = (50/42)/(65/42) = 10/13, yes 6/14.
	for _, c := range []struct {
		name string
		want float64
	}{
		{"f1_category_mean", 500.0 / 6},
		{"accuracy", 1100.0 / 14},
		{"precision", 500.0 / 6},
		{"recall", 500.0 / 7},
		{"f1", 1000.0 / 13},
		{"yes_ratio", 600.0 / 14},
	} {
		if got := metric(t, r.Metrics, c.name); !near(got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if r.Metrics[0].Name != "f1_category_mean" {
		t.Errorf("first metric %q, want f1_category_mean (the paper's number)", r.Metrics[0].Name)
	}
	adv := group(t, r, "category", "adversarial")
	if *adv.Confusion != (Confusion{TP: 3, FP: 1, TN: 4, FN: 2}) || adv.N != 10 {
		t.Errorf("adversarial confusion %+v n %d", *adv.Confusion, adv.N)
	}
	if got := metric(t, adv.Metrics, "f1"); !near(got, 200.0/3) {
		t.Errorf("adversarial f1 %v, want 66.67", got)
	}
	if *r.Confusion != (Confusion{TP: 5, FP: 1, TN: 6, FN: 2}) {
		t.Errorf("pooled confusion %+v", *r.Confusion)
	}
}

func TestReportUndefinedMetricsMarshalAsNull(t *testing.T) {
	items := []Item{{QuestionID: "1", Label: "yes", Category: "random"}, {QuestionID: "2", Label: "no", Category: "random"}}
	r := Score(TaskPOPE, items, map[string]string{"1": "No", "2": "No"})
	if p := metric(t, r.Metrics, "precision"); !math.IsNaN(p) {
		t.Fatalf("precision %v with no yes answers, want NaN", p)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `{"name":"precision","value":null}`) {
		t.Errorf("JSON lacks a null precision: %s", b)
	}
	var back struct {
		Task    string `json:"task"`
		Metrics []struct {
			Name  string   `json:"name"`
			Value *float64 `json:"value"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.Task != "pope" || *back.Metrics[0].Value != 50 {
		t.Errorf("round trip: %+v, %v (want task pope, accuracy 50)", back, err)
	}
	if s := r.String(); !strings.Contains(s, "n/a") {
		t.Errorf("report does not show n/a:\n%s", s)
	}
}

func TestReportNothingToScore(t *testing.T) {
	r := Score(TaskVQAv2, []Item{{QuestionID: "1"}}, map[string]string{"1": "yes"})
	if len(r.Metrics) != 0 || r.Scored != 0 || r.Answered != 1 {
		t.Errorf("got %+v, want one answered, none scored, no metrics", r)
	}
	if s := r.String(); !strings.Contains(s, "nothing to score") {
		t.Errorf("report:\n%s", s)
	}
}
