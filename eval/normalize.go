package eval

import (
	"strings"
	"unicode"
)

// The answer normalisation of the official VQA evaluation,
// GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py (master,
// the version quoted in GT-Vision-Lab/VQA#14), ported step by step:
// processPunctuation then processDigitArticle. The EvalAI answer processor
// that LLaVA scores TextVQA with (llava/eval/m4c_evaluator.py,
// EvalAIAnswerProcessor) uses the same four tables.

// contractions is vqaEval.py's self.contractions, verbatim. The keys with a
// capital I ("Id've", "I'dve", "Im", "Ive") can never match because words are
// lower-cased first; they are kept so the table stays comparable line by line
// with the reference.
var contractions = map[string]string{
	"aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
	"couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
	"dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
	"hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
	"hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
	"I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd",
	"itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am",
	"mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
	"mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't",
	"notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
	"'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've",
	"she'dve": "she'd've", "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
	"shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
	"somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
	"somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
	"someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's",
	"somethingd": "something'd", "somethingd've": "something'd've", "something'dve": "something'd've",
	"somethingll": "something'll", "thats": "that's", "thered": "there'd", "thered've": "there'd've",
	"there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
	"theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
	"theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
	"weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
	"whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
	"whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
	"wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
	"whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
	"wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
	"y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
	"y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
	"youll": "you'll", "youre": "you're", "youve": "you've",
}

// numberWords is vqaEval.py's self.manualMap.
var numberWords = map[string]string{
	"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
	"five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}

// punctuation is vqaEval.py's self.punct, in its order. The apostrophe, the
// colon and the period are not in it; periods have their own rule
// (stripPeriods).
var punctuation = []string{";", "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+",
	"\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"}

// periodStripCount is how many periods vqaEval.py's periodStrip removes at
// most: the call is self.periodStrip.sub("", outText, re.UNICODE), and the
// third positional argument of Pattern.sub is count, so re.UNICODE (32) caps
// the number of replacements.
const periodStripCount = 32

// NormalizeVQA is the official VQA normalisation of an answer:
// processDigitArticle(processPunctuation(s)). VQAAccuracy applies it only
// when the human answers disagree, as the reference does.
func NormalizeVQA(s string) string {
	return processDigitArticle(processPunctuation(s))
}

// processPunctuation follows vqaEval.py: every punctuation character is
// deleted when it touches a space anywhere in the input (p+" " or " "+p), or
// when the input contains a digit-comma-digit sequence (commaStrip, which
// keeps "1,000" together as "1000"); otherwise it becomes a space. The tests
// look at the original input, the replacements accumulate in the output.
// Then stripPeriods.
func processPunctuation(in string) string {
	out := in
	commaNumber := hasDigitCommaDigit(in)
	for _, p := range punctuation {
		if commaNumber || strings.Contains(in, p+" ") || strings.Contains(in, " "+p) {
			out = strings.ReplaceAll(out, p, "")
		} else {
			out = strings.ReplaceAll(out, p, " ")
		}
	}
	return stripPeriods(out, periodStripCount)
}

// hasDigitCommaDigit is re.search(r"(\d)(\,)(\d)", s) != None. Python's \d on
// str patterns matches any Unicode decimal digit, as unicode.IsDigit does.
func hasDigitCommaDigit(s string) bool {
	r := []rune(s)
	for i := 1; i+1 < len(r); i++ {
		if r[i] == ',' && unicode.IsDigit(r[i-1]) && unicode.IsDigit(r[i+1]) {
			return true
		}
	}
	return false
}

// stripPeriods is periodStrip.sub("", s, count=max) with periodStrip =
// r"(?!<=\d)(\.)(?!\d)": it deletes, left to right, up to max periods that are
// not followed by a digit ("2.5" keeps its point, "yes." loses it). The
// leading (?!<=\d) is a negative lookahead for the two characters "<=" and a
// digit; the next character is the period itself, so it always holds.
// Lookaheads see the original string, so deletions do not affect later
// matches.
func stripPeriods(s string, max int) string {
	if !strings.Contains(s, ".") {
		return s
	}
	r := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	removed := 0
	for i, c := range r {
		if c == '.' && removed < max && (i+1 == len(r) || !unicode.IsDigit(r[i+1])) {
			removed++
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// processDigitArticle follows vqaEval.py: lower-case, split on whitespace, map
// number words to digits, drop the articles a, an and the, then expand
// contractions word by word, and join with single spaces.
func processDigitArticle(in string) string {
	words := strings.FieldsFunc(pyLower(in), isPySpace)
	out := words[:0]
	for _, w := range words {
		if d, ok := numberWords[w]; ok {
			w = d
		}
		if w == "a" || w == "an" || w == "the" {
			continue
		}
		out = append(out, w)
	}
	for i, w := range out {
		if c, ok := contractions[w]; ok {
			out[i] = c
		}
	}
	return strings.Join(out, " ")
}

// NormalizeEvalAI is the answer processor LLaVA scores TextVQA with,
// EvalAIAnswerProcessor.__call__ in llava/eval/m4c_evaluator.py (from
// facebookresearch/mmf): word_tokenize (lower-case, delete "," and "?",
// split off "'s"), whitespace clean-up, then the VQA punctuation and
// digit/article steps. Its COMMA_STRIP, r"(?<=\d)(\,)+(?=\d)", differs from
// vqaEval.py's only on text that contains a comma, and word_tokenize has
// removed every comma, so processPunctuation is an exact stand-in.
func NormalizeEvalAI(s string) string {
	s = pyLower(s)
	s = strings.ReplaceAll(s, ",", "")
	s = strings.ReplaceAll(s, "?", "")
	s = strings.ReplaceAll(s, "'s", " 's")
	s = pyStrip(s)
	s = pyStrip(cleanTabsNewlines(s))
	return processDigitArticle(processPunctuation(s))
}

// cleanTabsNewlines is s.replace('\n', ' ').replace('\t', ' ').
func cleanTabsNewlines(s string) string {
	return strings.NewReplacer("\n", " ", "\t", " ").Replace(s)
}

// isPySpace is Python's str.isspace for one character, which str.split() and
// str.strip() use: Go's Unicode white space plus the ASCII information
// separators U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyStrip is Python's str.strip() without arguments.
func pyStrip(s string) string { return strings.TrimFunc(s, isPySpace) }

// pyLower stands in for Python's str.lower(). The two differ only where
// Python applies Unicode SpecialCasing (U+0130 becomes "i\u0307", and a word-
// final capital sigma becomes "ς"); neither occurs in these English answer
// sets.
func pyLower(s string) string { return strings.ToLower(s) }
