package eval

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
)

// Report holds a task's scores. Metric values are percentages, as the papers
// report them (VQAv2 78.5, POPE F1 85.9, ...).
type Report struct {
	Task      Task `json:"task"`
	Questions int  `json:"questions"` // questions in the set
	Answered  int  `json:"answered"`  // questions with a prediction
	Scored    int  `json:"scored"`    // answered questions with ground truth
	// Metrics are the headline numbers, in display order; empty when nothing
	// could be scored.
	Metrics []Metric `json:"metrics"`
	// Confusion is POPE's pooled yes/no confusion matrix.
	Confusion *Confusion `json:"confusion,omitempty"`
	// Groups break the scores down by answer type and question type (VQAv2,
	// GQA) or category (POPE), sorted by kind, then name.
	Groups []Group `json:"groups,omitempty"`
	// Transfer is what went to the model per image, when the caller says.
	Transfer *Transfer `json:"transfer,omitempty"`
}

// Transfer says what a run sent for each image and how many bytes.
type Transfer struct {
	What          string  `json:"what"` // "image file", "jpeg q90", "AlignedVQ frame"
	Images        int     `json:"images"`
	BytesPerImage float64 `json:"bytes_per_image"`
}

// Metric is one named score, in percent. Value is NaN where the reference
// would divide by zero; it marshals as null.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// MarshalJSON writes NaN as null (encoding/json rejects NaN).
func (m Metric) MarshalJSON() ([]byte, error) {
	v := &m.Value
	if math.IsNaN(m.Value) {
		v = nil
	}
	return json.Marshal(struct {
		Name  string   `json:"name"`
		Value *float64 `json:"value"`
	}{m.Name, v})
}

// Group is the scores of the questions sharing one answer type, question type
// or category.
type Group struct {
	Kind      string     `json:"kind"` // "answer_type", "question_type" or "category"
	Name      string     `json:"name"`
	N         int        `json:"n"` // scored questions in the group
	Metrics   []Metric   `json:"metrics"`
	Confusion *Confusion `json:"confusion,omitempty"`
}

// Metric returns the value of the headline metric called name.
func (r Report) Metric(name string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

// Score scores the predictions (question id -> answer text) for items. Items
// without a prediction count as unanswered and items without ground truth as
// unscored; the metrics cover the scored ones, so a partial run gives partial
// numbers, flagged by Answered < Questions.
//
// VQAv2 is scored the way LLaVA's reported numbers are made: the answer goes
// through NormalizeEvalAI, as scripts/convert_vqav2_for_submission.py does
// before upload, and the evaluation server then applies the official rule
// (VQAAccuracy). Without that step a "Yes" against ten "yes" would score 0.
func Score(task Task, items []Item, preds map[string]string) Report {
	r := Report{Task: task, Questions: len(items)}
	switch task {
	case TaskVQAv2, TaskTextVQA, TaskGQA:
		scoreAccuracy(&r, items, preds)
	case TaskPOPE:
		scorePOPE(&r, items, preds)
	default:
		panic("eval: Score on an unknown task")
	}
	return r
}

// mean accumulates per-question scores in question order, as the references
// sum them.
type mean struct {
	sum float64
	n   int
}

func (m *mean) add(x float64) { m.sum += x; m.n++ }

func (m *mean) percent() float64 { return 100 * m.sum / float64(m.n) }

func scoreAccuracy(r *Report, items []Item, preds map[string]string) {
	var overall mean
	byAnswerType := map[string]*mean{}
	byQuestionType := map[string]*mean{}
	for i := range items {
		it := &items[i]
		pred, ok := preds[it.QuestionID]
		if !ok {
			continue
		}
		r.Answered++
		if !it.hasTruth(r.Task) {
			continue
		}
		var s float64
		switch r.Task {
		case TaskVQAv2:
			// LLaVA's numbers come from answers passed through the EvalAI
			// processor (scripts/convert_vqav2_for_submission.py) and then
			// scored by the official evaluation on the server.
			s = VQAAccuracy(NormalizeEvalAI(pred), it.Answers)
		case TaskTextVQA:
			s = TextVQAAccuracy(pred, it.Answers)
		case TaskGQA:
			if GQAMatch(pred, it.Answers[0]) {
				s = 1
			}
		}
		r.Scored++
		overall.add(s)
		addTo(byAnswerType, it.AnswerType, s)
		addTo(byQuestionType, it.QuestionType, s)
	}
	if overall.n == 0 {
		return
	}
	r.Metrics = []Metric{{"accuracy", overall.percent()}}
	r.Groups = append(accuracyGroups("answer_type", byAnswerType), accuracyGroups("question_type", byQuestionType)...)
}

func addTo(groups map[string]*mean, name string, s float64) {
	if name == "" {
		return
	}
	g := groups[name]
	if g == nil {
		g = &mean{}
		groups[name] = g
	}
	g.add(s)
}

func accuracyGroups(kind string, groups map[string]*mean) []Group {
	out := make([]Group, 0, len(groups))
	for _, name := range sortedKeys(groups) {
		g := groups[name]
		out = append(out, Group{Kind: kind, Name: name, N: g.n, Metrics: []Metric{{"accuracy", g.percent()}}})
	}
	return out
}

// scorePOPE follows eval_pope.py per category; the pooled matrix gives the
// headline accuracy, precision, recall, F1 and yes-ratio, and with several
// categories f1_category_mean is the number the LLaVA-1.5 paper reports (the
// mean F1 of the adversarial, popular and random splits; haotian-liu/LLaVA#626).
func scorePOPE(r *Report, items []Item, preds map[string]string) {
	var pooled Confusion
	byCategory := map[string]*Confusion{}
	for i := range items {
		it := &items[i]
		pred, ok := preds[it.QuestionID]
		if !ok {
			continue
		}
		r.Answered++
		if !it.hasTruth(TaskPOPE) {
			continue
		}
		r.Scored++
		yes, label := POPEAnswerIsYes(pred), it.Label != "no"
		pooled.Add(yes, label)
		c := byCategory[it.Category]
		if c == nil {
			c = &Confusion{}
			byCategory[it.Category] = c
		}
		c.Add(yes, label)
	}
	if r.Scored == 0 {
		return
	}
	r.Confusion = &pooled
	r.Metrics = popeMetrics(pooled)
	f1 := 0.0
	for _, name := range sortedKeys(byCategory) {
		c := *byCategory[name]
		r.Groups = append(r.Groups, Group{Kind: "category", Name: name, N: c.N(), Metrics: popeMetrics(c), Confusion: &c})
		f1 += c.F1()
	}
	if len(byCategory) > 1 {
		f1Mean := Metric{"f1_category_mean", 100 * f1 / float64(len(byCategory))}
		r.Metrics = append([]Metric{f1Mean}, r.Metrics...)
	}
}

func popeMetrics(c Confusion) []Metric {
	return []Metric{
		{"accuracy", 100 * c.Accuracy()},
		{"precision", 100 * c.Precision()},
		{"recall", 100 * c.Recall()},
		{"f1", 100 * c.F1()},
		{"yes_ratio", 100 * c.YesRatio()},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// String renders the report as a small plain-text table.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d questions, %d answered, %d scored\n", r.Task, r.Questions, r.Answered, r.Scored)
	if t := r.Transfer; t != nil {
		fmt.Fprintf(&b, "  sent: %s, %.1f bytes per image (%d images)\n", t.What, t.BytesPerImage, t.Images)
	}
	if r.Answered < r.Questions {
		b.WriteString("  partial: the metrics cover only the answered questions\n")
	}
	if len(r.Metrics) == 0 {
		b.WriteString("  nothing to score: no answered question has ground truth\n")
		return b.String()
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, m := range r.Metrics {
		fmt.Fprintf(tw, "  %s\t%s\n", m.Name, formatValue(m.Value))
	}
	if c := r.Confusion; c != nil {
		fmt.Fprintf(tw, "  tp fp tn fn\t%d %d %d %d\n", c.TP, c.FP, c.TN, c.FN)
	}
	kind := ""
	for _, g := range r.Groups {
		if g.Kind != kind {
			kind = g.Kind
			fmt.Fprintf(tw, "\n  %s\tn", kind)
			for _, m := range g.Metrics {
				fmt.Fprintf(tw, "\t%s", m.Name)
			}
			if g.Confusion != nil {
				fmt.Fprint(tw, "\ttp\tfp\ttn\tfn")
			}
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "  %s\t%d", g.Name, g.N)
		for _, m := range g.Metrics {
			fmt.Fprintf(tw, "\t%s", formatValue(m.Value))
		}
		if c := g.Confusion; c != nil {
			fmt.Fprintf(tw, "\t%d\t%d\t%d\t%d", c.TP, c.FP, c.TN, c.FN)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	return b.String()
}

// formatValue prints a percentage with two decimals, as vqaEval.py rounds.
func formatValue(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}
