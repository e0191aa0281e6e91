package eval

import (
	"math"
	"strings"
)

// VQAAccuracy is the VQAv2 accuracy of pred against the human answers gt, as
// vqaEval.py's evaluate computes it for one question (GT-Vision-Lab/VQA
// master; Score first passes LLaVA's answers through NormalizeEvalAI, as
// LLaVA's upload script does):
//
//  1. answers and prediction: '\n' and '\t' become spaces, then strip;
//  2. only if the human answers are not all identical (len(set(gtAnswers)) > 1)
//     are the answers and the prediction normalised (NormalizeVQA), so against
//     ten identical answers the prediction must match them character for
//     character;
//  3. for each human i, acc_i = min(1, #{j != i : gt[j] == pred} / 3), and the
//     accuracy is the mean of acc_i over the humans.
//
// Step 3 is the "averaged over all 10 choose 9 sets of human annotators" form
// of min(#humans/3, 1) (GT-Vision-Lab/VQA#1). The reference excludes the left-
// out human by comparing answer dicts, which always differ in answer_id, so it
// excludes exactly that one human, as the index does here.
//
// gt must not be empty.
func VQAAccuracy(pred string, gt []string) float64 {
	if len(gt) == 0 {
		panic("eval: VQAAccuracy needs at least one ground-truth answer")
	}
	answers := make([]string, len(gt))
	for i, a := range gt {
		answers[i] = pyStrip(cleanTabsNewlines(a))
	}
	res := pyStrip(cleanTabsNewlines(pred))
	if !allEqual(answers) {
		for i := range answers {
			answers[i] = NormalizeVQA(answers[i])
		}
		res = NormalizeVQA(res)
	}
	return leaveOneOut(res, answers)
}

// TextVQAAccuracy is the TextVQA accuracy of pred against the ten human
// answers gt, as TextVQAAccuracyEvaluator in LLaVA's
// llava/eval/m4c_evaluator.py computes it: every answer and the prediction go
// through NormalizeEvalAI (always, unlike VQAv2), then the same leave-one-out
// rule as VQAAccuracy. (The reference scores each distinct human answer and
// looks the prediction up, with 0 for a prediction no human gave; that is the
// same number.) gt must not be empty.
func TextVQAAccuracy(pred string, gt []string) float64 {
	if len(gt) == 0 {
		panic("eval: TextVQAAccuracy needs at least one ground-truth answer")
	}
	answers := make([]string, len(gt))
	for i, a := range gt {
		answers[i] = NormalizeEvalAI(a)
	}
	return leaveOneOut(NormalizeEvalAI(pred), answers)
}

// leaveOneOut is mean over i of min(1, #{j != i : answers[j] == res} / 3),
// summed in the reference's order so the float result is the same.
func leaveOneOut(res string, answers []string) float64 {
	matches := 0
	for _, a := range answers {
		if a == res {
			matches++
		}
	}
	sum := 0.0
	for _, a := range answers {
		others := matches
		if a == res {
			others--
		}
		sum += math.Min(1, float64(others)/3)
	}
	return sum / float64(len(answers))
}

func allEqual(s []string) bool {
	for _, x := range s[1:] {
		if x != s[0] {
			return false
		}
	}
	return true
}

// NormalizeGQA cleans a GQA prediction as LLaVA's
// scripts/convert_gqa_for_eval.py does before the official evaluation:
// text.rstrip('.').lower() (every trailing period goes, then lower case).
func NormalizeGQA(pred string) string {
	return pyLower(strings.TrimRight(pred, "."))
}

// GQAMatch reports whether pred is right for the gold answer: the official
// GQA eval.py scores correct = (predicted == gold) on the cleaned prediction
// and the gold answer as the questions file gives it.
func GQAMatch(pred, gold string) bool {
	return NormalizeGQA(pred) == gold
}

// POPEAnswerIsYes parses a POPE answer as LLaVA's llava/eval/eval_pope.py
// does: keep the text before the first period, delete commas, split on single
// spaces, and read "no" when a word is exactly "No", "not" or "no"; anything
// else is "yes".
func POPEAnswerIsYes(text string) bool {
	if i := strings.IndexByte(text, '.'); i >= 0 {
		text = text[:i]
	}
	text = strings.ReplaceAll(text, ",", "")
	for _, w := range strings.Split(text, " ") {
		if w == "No" || w == "not" || w == "no" {
			return false
		}
	}
	return true
}

// Confusion counts POPE outcomes with "yes" the positive class.
type Confusion struct {
	TP int `json:"tp"`
	FP int `json:"fp"`
	TN int `json:"tn"`
	FN int `json:"fn"`
}

// Add counts one answer: predYes is the parsed prediction, labelYes the
// ground truth (eval_pope.py maps every label but "no" to yes).
func (c *Confusion) Add(predYes, labelYes bool) {
	switch {
	case predYes && labelYes:
		c.TP++
	case predYes:
		c.FP++
	case labelYes:
		c.FN++
	default:
		c.TN++
	}
}

// N is the number of answers counted.
func (c Confusion) N() int { return c.TP + c.FP + c.TN + c.FN }

// The ratios below are fractions as eval_pope.py prints them. Where the
// reference would divide by zero (and stop with ZeroDivisionError) they are
// NaN, which reports show as n/a and JSON as null.

// Accuracy is (TP + TN) / N.
func (c Confusion) Accuracy() float64 { return ratio(c.TP+c.TN, c.N()) }

// Precision is TP / (TP + FP).
func (c Confusion) Precision() float64 { return ratio(c.TP, c.TP+c.FP) }

// Recall is TP / (TP + FN).
func (c Confusion) Recall() float64 { return ratio(c.TP, c.TP+c.FN) }

// F1 is 2·precision·recall / (precision + recall).
func (c Confusion) F1() float64 {
	p, r := c.Precision(), c.Recall()
	if p+r == 0 {
		return math.NaN()
	}
	return 2 * p * r / (p + r)
}

// YesRatio is the share of answers parsed as yes: (TP + FP) / N.
func (c Confusion) YesRatio() float64 { return ratio(c.TP+c.FP, c.N()) }

func ratio(num, den int) float64 {
	if den == 0 {
		return math.NaN()
	}
	return float64(num) / float64(den)
}
