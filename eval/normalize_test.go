package eval

import (
	"strings"
	"testing"
)

// Every expected value below is worked out by hand from vqaEval.py's rules
// (the comment says which rule decides it), not produced by this code.
func TestNormalizeVQA(t *testing.T) {
	cases := []struct{ in, want, why string }{
		// processDigitArticle: contractions, number words, articles.
		{"dont", "don't", "contraction table"},
		{"whats", "what's", "contraction table"},
		{"somebody'd", "somebodyd", "the table maps this one backwards"},
		{"don't", "don't", "the apostrophe is not punctuation"},
		{"Im", "im", "lower-cased before the lookup, so the table's \"Im\" never matches"},
		{"two", "2", "manualMap"},
		{"Ten", "10", "lower-cased, then manualMap"},
		{"none", "0", "manualMap maps none to 0"},
		{"The dog", "dog", "article dropped"},
		{"a cat", "cat", "article dropped"},
		{"an apple", "apple", "article dropped"},
		{"two\tdogs", "2 dogs", "split on any white space, joined with one space"},
		{"two\x1cdogs", "2 dogs", "Python's split() treats U+001C as white space"},
		// processPunctuation: a mark touching a space is deleted, otherwise it
		// becomes a space.
		{"hello!", "hello", "'!' touches no space: becomes a space, then the split drops it"},
		{"(yes)", "yes", "both parentheses become spaces"},
		{"yes (2)", "yes 2", "' (' is in the input, so '(' is deleted; ')' becomes a space"},
		{"x - y", "x y", "' -' is in the input, so '-' is deleted"},
		{"t-shirt", "t shirt", "'-' touches no space: becomes a space"},
		{"a-b", "b", "'-' becomes a space, then 'a' is an article"},
		{"red,blue", "red blue", "',' becomes a space"},
		{"red, blue", "red blue", "', ' is in the input, so ',' is deleted"},
		{"what's that?", "what's that", "'?' becomes a space; \"what's\" is not a table key"},
		{`"quoted"`, "quoted", "'\"' becomes a space"},
		// commaStrip: a digit-comma-digit anywhere deletes every mark.
		{"1,000", "1000", "commaStrip matches: ',' deleted"},
		{"1,5-6", "156", "commaStrip matches, so '-' is deleted too"},
		{"\u0663,\u0665", "\u0663\u0665", "Python's \\d matches Arabic-Indic digits"},
		// periodStrip: a period not followed by a digit is deleted.
		{"yes.", "yes", "final period deleted"},
		{"2.5", "2.5", "period before a digit kept"},
		{"3.14.", "3.14", "first period kept (digit follows), last deleted"},
		{"..5", ".5", "first period deleted ('.' follows), second kept ('5' follows)"},
		{"mr.smith", "mrsmith", "period before a letter deleted"},
		// periodStrip.sub(..., re.UNICODE) passes 32 as count: at most 32 go.
		{strings.Repeat(".", 40), strings.Repeat(".", 8), "40 periods, 32 deleted"},
	}
	for _, c := range cases {
		if got := NormalizeVQA(c.in); got != c.want {
			t.Errorf("NormalizeVQA(%q) = %q, want %q (%s)", c.in, got, c.want, c.why)
		}
	}
}

// Expected values follow EvalAIAnswerProcessor in LLaVA's m4c_evaluator.py,
// worked by hand.
func TestNormalizeEvalAI(t *testing.T) {
	cases := []struct{ in, want, why string }{
		// The reference file's own __main__ example: lower-case, the final
		// period deleted, articles "the" and "a" dropped; '%' is not
		// punctuation.
		{"The poster shows a 10% discount.", "poster shows 10% discount", "m4c_evaluator.py __main__"},
		{"It's Bob's", "it 's bob 's", "word_tokenize splits off 's"},
		{"1,000", "1000", "word_tokenize deletes commas"},
		{"red, blue", "red blue", "word_tokenize deletes commas"},
		{"What?", "what", "word_tokenize deletes '?'"},
		{"Yes.", "yes", "period deleted, lower-cased"},
		// Unlike vqaEval.py, the comma is gone before processPunctuation, so
		// commaStrip cannot match and '-' becomes a space.
		{"1,5-6", "15 6", "commas removed first"},
		{" Dakota\tDigital \n", "dakota digital", "white space cleaned"},
	}
	for _, c := range cases {
		if got := NormalizeEvalAI(c.in); got != c.want {
			t.Errorf("NormalizeEvalAI(%q) = %q, want %q (%s)", c.in, got, c.want, c.why)
		}
	}
}
