package eval

import (
	"math"
	"testing"
)

// near compares a float result with a hand-computed fraction. Both are
// float64 roundings of the same rational number (sums of thirds, divided by
// ten), so they may differ in the last couple of bits and in nothing else.
func near(got, want float64) bool { return math.Abs(got-want) <= 1e-12 }

// repeat builds a ground-truth list: repeat("red", 3, "blue", 7).
func repeat(pairs ...any) []string {
	var out []string
	for i := 0; i < len(pairs); i += 2 {
		for range pairs[i+1].(int) {
			out = append(out, pairs[i].(string))
		}
	}
	return out
}

// Leave-one-out accuracy, worked by hand: for each of the n humans, count the
// matches among the other n-1, acc_i = min(1, matches/3); the accuracy is the
// mean of acc_i.
func TestVQAAccuracy(t *testing.T) {
	cases := []struct {
		pred string
		gt   []string
		want float64
		why  string
	}{
		{"red", repeat("red", 3, "blue", 7), 0.9,
			"3 matching humans left out: 2 others match -> 2/3 each; 7 others: 3 match -> 1 each; (3*2/3 + 7)/10 = 0.9"},
		{"red", repeat("red", 1, "blue", 9), 0.3,
			"the matching human left out: 0; 9 others: 1 match -> 1/3 each; 3/10"},
		{"red", repeat("red", 2, "blue", 8), 0.6,
			"2 matching left out: 1/3 each; 8 others: 2/3 each; (2/3 + 16/3)/10 = 0.6"},
		{"red", repeat("red", 4, "blue", 6), 1,
			"at least 3 others match whoever is left out"},
		{"green", repeat("red", 4, "blue", 6), 0, "no human said green"},
		// GT-Vision-Lab/VQA#1: 8 "yes", 2 "no"; the maintainer's hand
		// computation gives 0.6 for "no" and 1.0 for "yes".
		{"no", repeat("yes", 8, "no", 2), 0.6, "8*min(1, 2/3) + 2*min(1, 1/3) = 6, over 10"},
		{"yes", repeat("yes", 8, "no", 2), 1, "8*min(1, 7/3) + 2*min(1, 8/3) = 10, over 10"},
		// Identical human answers: nothing is normalised.
		{"yes", repeat("yes", 10), 1, "exact match with all ten"},
		{" yes\n", repeat("yes", 10), 1, "white space is cleaned in every case"},
		{"Yes", repeat("yes", 10), 0, "identical answers: no lower-casing, so no match"},
		{"yes.", repeat("yes", 10), 0, "identical answers: the period stays"},
		{"two", repeat("2", 10), 0, "identical answers: number words stay words"},
		// Differing human answers: both sides are normalised.
		{"Two", repeat("two", 4, "2", 3, "three", 3), 1,
			"answers become 2 x7 and 3 x3, the prediction 2: 6 or 7 others match everyone"},
		{"YES!", repeat("yes", 9, "Yes", 1), 1, "all ten become yes, and so does YES!"},
		{"two", repeat("2", 9, "two", 1), 1, "answers differ, so \"two\" normalises to 2 on both sides"},
	}
	for _, c := range cases {
		if got := VQAAccuracy(c.pred, c.gt); !near(got, c.want) {
			t.Errorf("VQAAccuracy(%q, %q) = %v, want %v (%s)", c.pred, c.gt, got, c.want, c.why)
		}
	}
}

func TestTextVQAAccuracy(t *testing.T) {
	// The ten answers of TextVQA val question 34602 ("what is the brand of
	// this camera?"): dakota x5, dakota digital x3, and two singletons.
	gt := []string{"nous les gosses", "dakota", "clos culombu", "dakota digital", "dakota",
		"dakota", "dakota digital", "dakota digital", "dakota", "dakota"}
	cases := []struct {
		pred string
		gt   []string
		want float64
		why  string
	}{
		{"Dakota", gt, 1, "dakota: 5 humans, so 4 or 5 others match whoever is left out"},
		{"Dakota Digital.", gt, 0.9, "3 humans: (3*2/3 + 7*1)/10"},
		{"clos culombu", gt, 0.3, "1 human: (0 + 9*1/3)/10"},
		{"Kodak", gt, 0, "no human said kodak"},
		{"dakota", repeat("Dakota", 10), 1, "unlike VQAv2, identical answers are normalised too"},
	}
	for _, c := range cases {
		if got := TextVQAAccuracy(c.pred, c.gt); !near(got, c.want) {
			t.Errorf("TextVQAAccuracy(%q) = %v, want %v (%s)", c.pred, got, c.want, c.why)
		}
	}
}

func TestGQAMatch(t *testing.T) {
	cases := []struct {
		pred, gold string
		want       bool
	}{
		{"yes", "yes", true},
		{"Yes.", "yes", true},         // rstrip('.') then lower()
		{"Left..", "left", true},      // every trailing period goes
		{"yes ", "yes", false},        // rstrip('.') strips no spaces
		{"the table", "table", false}, // no article removal in GQA
		{"traffic light", "traffic light", true},
		{"no.", "yes", false},
	}
	for _, c := range cases {
		if got := GQAMatch(c.pred, c.gold); got != c.want {
			t.Errorf("GQAMatch(%q, %q) = %v, want %v", c.pred, c.gold, got, c.want)
		}
	}
}

// eval_pope.py: first sentence, commas out, split on " ", "No"/"not"/"no" -> no.
func TestPOPEAnswerIsYes(t *testing.T) {
	cases := []struct {
		text string
		yes  bool
	}{
		{"Yes", true},
		{"No", false},
		{"no.", false},
		{"No, there is not.", false},           // "No," loses its comma
		{"Yes, there is a dog. No cat.", true}, // only the first sentence counts
		{"There is no dog", false},
		{"I do not know", false},
		{"NO", true},       // the reference matches "No" and "no" only
		{"Not sure", true}, // and "not", not "Not"
		{"nothing", true},
		{"no\nthing", true}, // split(' ') keeps "no\nthing" one word
		{"", true},
	}
	for _, c := range cases {
		if got := POPEAnswerIsYes(c.text); got != c.yes {
			t.Errorf("POPEAnswerIsYes(%q) = %v, want %v", c.text, got, c.yes)
		}
	}
}

func TestConfusionMetrics(t *testing.T) {
	// TP 3, FP 1, TN 4, FN 2: accuracy 7/10, precision 3/4, recall 3/5,
	// F1 = 2*(3/4)*(3/5) / (3/4 + 3/5) = 0.9 / 1.35 = 2/3, yes-ratio 4/10.
	c := Confusion{TP: 3, FP: 1, TN: 4, FN: 2}
	for _, m := range []struct {
		name      string
		got, want float64
	}{
		{"accuracy", c.Accuracy(), 0.7},
		{"precision", c.Precision(), 0.75},
		{"recall", c.Recall(), 0.6},
		{"f1", c.F1(), 2.0 / 3},
		{"yes_ratio", c.YesRatio(), 0.4},
	} {
		if !near(m.got, m.want) {
			t.Errorf("%s = %v, want %v", m.name, m.got, m.want)
		}
	}
	// Every answer "no": precision is 0/0, where eval_pope.py would raise
	// ZeroDivisionError.
	none := Confusion{TN: 5, FN: 5}
	if !math.IsNaN(none.Precision()) || !math.IsNaN(none.F1()) {
		t.Errorf("precision %v, F1 %v with no yes answers, want NaN", none.Precision(), none.F1())
	}
	if none.Recall() != 0 || none.YesRatio() != 0 || none.Accuracy() != 0.5 {
		t.Errorf("recall %v, yes-ratio %v, accuracy %v; want 0, 0, 0.5", none.Recall(), none.YesRatio(), none.Accuracy())
	}
}
