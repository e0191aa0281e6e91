package eval

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// writeFiles writes name -> content into a fresh directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func vqaAnswers(answers ...string) string {
	var parts []string
	for i, a := range answers {
		parts = append(parts, `{"answer": "`+a+`", "answer_confidence": "yes", "answer_id": `+strconv.Itoa(i+1)+`}`)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

const vqaAnnotations = `{"info": {}, "license": {}, "data_subtype": "val2014", "annotations": [
 {"question_type": "what is", "multiple_choice_answer": "down", "answers": ` + `ANS1` + `,
  "image_id": 262148, "answer_type": "other", "question_id": 262148000},
 {"question_type": "how many", "multiple_choice_answer": "2", "answers": ` + `ANS2` + `,
  "image_id": 393225, "answer_type": "number", "question_id": 393225001}]}`

func annotationsJSON() string {
	return strings.NewReplacer(
		"ANS1", vqaAnswers("down", "down", "at table", "skateboard", "down", "table", "down", "down", "down", "down"),
		"ANS2", vqaAnswers("2", "2", "2", "2", "2", "2", "2", "2", "2", "two"),
	).Replace(vqaAnnotations)
}

func TestLoadVQAv2Official(t *testing.T) {
	// data_subtype after the questions: the key order of a JSON object is free.
	dir := writeFiles(t, map[string]string{
		"q.json": `{"info": {"year": 2017}, "task_type": "Open-Ended", "questions": [
			{"image_id": 262148, "question": "Where is he looking?", "question_id": 262148000},
			{"image_id": 393225, "question": "How many?", "question_id": 393225001}],
			"data_subtype": "val2014"}`,
		"a.json": annotationsJSON(),
	})
	items, err := LoadItems(TaskVQAv2, filepath.Join(dir, "q.json"), filepath.Join(dir, "a.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Item{
		{QuestionID: "262148000", Image: "COCO_val2014_000000262148.jpg", Question: "Where is he looking?",
			Answers:    []string{"down", "down", "at table", "skateboard", "down", "table", "down", "down", "down", "down"},
			AnswerType: "other", QuestionType: "what is"},
		{QuestionID: "393225001", Image: "COCO_val2014_000000393225.jpg", Question: "How many?",
			Answers:    []string{"2", "2", "2", "2", "2", "2", "2", "2", "2", "two"},
			AnswerType: "number", QuestionType: "how many"},
	}
	if !reflect.DeepEqual(items, want) {
		t.Errorf("got %+v\nwant %+v", items, want)
	}
	if p := TaskVQAv2.Prompt(items[0].Question); p != "Where is he looking?\nAnswer the question using a single word or phrase." {
		t.Errorf("prompt %q", p)
	}
}

func TestLoadVQAv2TestDevImageNames(t *testing.T) {
	dir := writeFiles(t, map[string]string{"q.json": `{"data_subtype": "test-dev2015",
		"questions": [{"image_id": 262144, "question": "Is it?", "question_id": 262144000}]}`})
	items, err := LoadItems(TaskVQAv2, filepath.Join(dir, "q.json"), "")
	if err != nil {
		t.Fatal(err)
	}
	// test-dev questions are about test2015 images.
	if items[0].Image != "COCO_test2015_000000262144.jpg" || items[0].Answers != nil {
		t.Errorf("got %+v", items[0])
	}
}

func TestLoadVQAv2LLaVA(t *testing.T) {
	const text = "Where is he looking?\nAnswer the question using a single word or phrase."
	dir := writeFiles(t, map[string]string{
		"q.jsonl": `{"question_id": 262148000, "image": "COCO_val2014_000000262148.jpg", "text": "Where is he looking?\nAnswer the question using a single word or phrase.", "category": "default"}` + "\n",
		"a.json":  annotationsJSON(),
	})
	items, err := LoadItems(TaskVQAv2, filepath.Join(dir, "q.jsonl"), filepath.Join(dir, "a.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].QuestionID != "262148000" || items[0].AnswerType != "other" || len(items[0].Answers) != 10 {
		t.Fatalf("got %+v", items)
	}
	// The suffix is already in LLaVA's text; the prompt must not repeat it.
	if p := TaskVQAv2.Prompt(items[0].Question); p != text {
		t.Errorf("prompt %q, want %q", p, text)
	}
}

const gqaQuestions = `{
 "201307251": {"semantic": [{"operation": "select", "dependencies": [], "argument": "scene"}],
  "entailed": [], "equivalent": ["201307251"], "question": "Is it overcast?", "imageId": "n435808",
  "isBalanced": true, "groups": {"global": null, "local": "06-weather"}, "answer": "no",
  "types": {"detailed": "weatherVerify", "semantic": "attr", "structural": "verify"},
  "fullAnswer": "No, it is clear."},
 "201640614": {"question": "Who is wearing the dress?", "imageId": "n165008", "isBalanced": true,
  "answer": "woman", "types": {"structural": "query"}},
 "999": {"question": "Unbalanced?", "imageId": "n1", "isBalanced": false, "answer": "yes",
  "types": {"structural": "verify"}}
}`

func TestLoadGQA(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"testdev_balanced_questions.json": gqaQuestions,
		"q.jsonl": `{"question_id": "201640614", "image": "n165008.jpg", "text": "Who is wearing the dress?\nAnswer the question using a single word or phrase.", "category": "default"}
{"question_id": "201307251", "image": "n435808.jpg", "text": "Is it overcast?\nAnswer the question using a single word or phrase.", "category": "default"}
`,
	})
	official := filepath.Join(dir, "testdev_balanced_questions.json")
	items, err := LoadItems(TaskGQA, official, "")
	if err != nil {
		t.Fatal(err)
	}
	// File order is kept; the unbalanced question is not scored by eval.py,
	// so it is left out.
	want := []Item{
		{QuestionID: "201307251", Image: "n435808.jpg", Question: "Is it overcast?", Answers: []string{"no"}, AnswerType: "binary", QuestionType: "verify"},
		{QuestionID: "201640614", Image: "n165008.jpg", Question: "Who is wearing the dress?", Answers: []string{"woman"}, AnswerType: "open", QuestionType: "query"},
	}
	if !reflect.DeepEqual(items, want) {
		t.Errorf("official: got %+v\nwant %+v", items, want)
	}
	items, err = LoadItems(TaskGQA, filepath.Join(dir, "q.jsonl"), official)
	if err != nil {
		t.Fatal(err)
	}
	if items[0].QuestionID != "201640614" || items[0].Answers[0] != "woman" || items[0].AnswerType != "open" ||
		items[1].Answers[0] != "no" || !strings.HasSuffix(items[1].Question, ShortAnswerSuffix) {
		t.Errorf("LLaVA + official: got %+v", items)
	}
	if _, err := LoadItems(TaskGQA, official, official); err == nil || !strings.Contains(err.Error(), "carries its answers") {
		t.Errorf("official file with annotations: err %v", err)
	}
}

const textVQAOfficial = `{"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": [
 {"question": "what is the brand of this camera?", "image_id": "003a8ae2ef43b901", "image_classes": ["Camera"],
  "question_tokens": ["what"], "question_id": 34602, "set_name": "val", "ocr_tokens": ["DAKOTA", "DIGITAL"],
  "answers": ["nous les gosses", "dakota", "clos culombu", "dakota digital", "dakota", "dakota", "dakota digital", "dakota digital", "dakota", "dakota"]},
 {"question": "what does the small white text spell?", "image_id": "003a8ae2ef43b901", "question_id": 34603,
  "answers": ["copenhagen", "copenhagen", "copenhagen", "copenhagen", "copenhagen", "copenhagen", "copenhagen", "copenhagen", "copenhagen", "thursday"]}
]}`

func TestLoadTextVQA(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"TextVQA_0.5.1_val.json": textVQAOfficial,
		// LLaVA's file keys questions by image id (eval_textvqa.py joins on
		// image id and question), so both lines share a question_id.
		"q.jsonl": `{"question_id": "003a8ae2ef43b901", "image": "003a8ae2ef43b901.jpg", "text": "What does the small white text spell?\nAnswer the question using a single word or phrase."}
{"question_id": "003a8ae2ef43b901", "image": "003a8ae2ef43b901.jpg", "text": "What is the brand of this camera?\nReference OCR token: DAKOTA, DIGITAL\nAnswer the question using a single word or phrase."}
`,
	})
	official := filepath.Join(dir, "TextVQA_0.5.1_val.json")
	items, err := LoadItems(TaskTextVQA, official, "")
	if err != nil {
		t.Fatal(err)
	}
	if items[0].QuestionID != "34602" || items[0].Image != "003a8ae2ef43b901.jpg" ||
		items[0].Question != "what is the brand of this camera?\nReference OCR token: DAKOTA, DIGITAL" ||
		len(items[0].Answers) != 10 || items[1].Question != "what does the small white text spell?" {
		t.Errorf("official: got %+v", items)
	}
	items, err = LoadItems(TaskTextVQA, filepath.Join(dir, "q.jsonl"), official)
	if err != nil {
		t.Fatal(err)
	}
	if items[0].QuestionID != "34603" || items[0].Answers[9] != "thursday" ||
		items[1].QuestionID != "34602" || items[1].Answers[0] != "nous les gosses" ||
		!strings.HasPrefix(items[1].Question, "What is the brand") {
		t.Errorf("LLaVA + official: got %+v", items)
	}
	// Without annotations the image ids collide.
	if _, err := LoadItems(TaskTextVQA, filepath.Join(dir, "q.jsonl"), ""); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("LLaVA file alone: err %v", err)
	}
}

func TestTextVQAPromptQuestion(t *testing.T) {
	// The branches of eval_textvqa.py's prompt_processor.
	cases := []struct{ prompt, want string }{
		{"OCR tokens: a, b. Question: What is it? Short answer: ", "what is it?"},
		{"What is it?\nReference OCR token: A, B\nAnswer the question using a single word or phrase.", "what is it?"},
		{"Reference OCR token: A, B\nWhat is it?\nAnswer the question using a single word or phrase.", "what is it?"},
		{"What is it?\nAnswer the question using a single word or phrase.", "what is it?"},
	}
	for _, c := range cases {
		if got, err := textVQAPromptQuestion(c.prompt); err != nil || got != c.want {
			t.Errorf("textVQAPromptQuestion(%q) = %q, %v; want %q", c.prompt, got, err, c.want)
		}
	}
	if _, err := textVQAPromptQuestion("one line"); err == nil {
		t.Error("a one-line prompt was accepted; prompt_processor asserts on it")
	}
}

func TestLoadPOPE(t *testing.T) {
	const suffix = `\nAnswer the question using a single word or phrase.`
	dir := writeFiles(t, map[string]string{
		"llava_pope_test.jsonl": `{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?` + suffix + `", "category": "adversarial"}
{"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a dog in the image?` + suffix + `", "category": "adversarial"}
{"question_id": 3, "image": "COCO_val2014_000000210789.jpg", "text": "Is there a car in the image?` + suffix + `", "category": "random"}
`,
		// The label files number their questions afresh.
		"coco/coco_pope_adversarial.json": `{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes"}
{"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a dog in the image?", "label": "no"}
`,
		"coco/coco_pope_random.json": `{"question_id": 1, "image": "COCO_val2014_000000210789.jpg", "text": "Is there a car in the image?", "label": "yes"}
`,
		"coco/README.md": "not a label file",
	})
	items, err := LoadItems(TaskPOPE, filepath.Join(dir, "llava_pope_test.jsonl"), filepath.Join(dir, "coco"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.QuestionID+":"+it.Category+":"+it.Label)
	}
	if want := "1:adversarial:yes 2:adversarial:no 3:random:yes"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}

	// A label file on its own: labels inline, category from the file name.
	items, err = LoadItems(TaskPOPE, filepath.Join(dir, "coco", "coco_pope_adversarial.json"), "")
	if err != nil {
		t.Fatal(err)
	}
	if items[1].Label != "no" || items[1].Category != "adversarial" {
		t.Errorf("label file alone: %+v", items[1])
	}
}

func TestLoadPOPEMismatch(t *testing.T) {
	q := `{"question_id": 1, "image": "a.jpg", "text": "Is there a cat in the image?", "category": "random"}` + "\n"
	cases := []struct{ labels, want string }{
		{`{"question_id": 1, "image": "b.jpg", "text": "Is there a cat in the image?", "label": "yes"}`, "does not match"},
		{`{"question_id": 1, "image": "a.jpg", "text": "Is there a cat in the image?", "label": "yes"}` + "\n" +
			`{"question_id": 2, "image": "a.jpg", "text": "Is there a dog in the image?", "label": "no"}`, "2 labels for 1 questions"},
		{`{"question_id": 1, "image": "a.jpg", "text": "Is there a cat in the image?", "label": "maybe"}`, `coco_pope_random.json:1: label "maybe"`},
	}
	for _, c := range cases {
		dir := writeFiles(t, map[string]string{"q.jsonl": q, "coco_pope_random.json": c.labels + "\n"})
		_, err := LoadItems(TaskPOPE, filepath.Join(dir, "q.jsonl"), filepath.Join(dir, "coco_pope_random.json"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("labels %q: err %v, want it to contain %q", c.labels, err, c.want)
		}
	}
}

func TestLoadErrorsNameFileAndRecord(t *testing.T) {
	cases := []struct {
		task      Task
		qName, q  string
		aName, a  string
		wantInErr string
	}{
		{TaskGQA, "q.jsonl", `{"question_id": "1", "image": "a.jpg", "text": "Q?"}` + "\n" + `{"question_id": "2", "image": "b.jpg", "text": ` + "\n",
			"", "", "q.jsonl:2"},
		{TaskPOPE, "q.jsonl", "\n" + `{"image": "a.jpg", "text": "Q?"}` + "\n", "", "", "q.jsonl:2: no question_id"},
		{TaskVQAv2, "q.jsonl", `{"question_id": 1.5, "image": "a.jpg", "text": "Q?"}` + "\n", "", "", "neither a string nor an integer"},
		{TaskVQAv2, "q.jsonl", `{"question_id": 1, "image": "a.jpg", "text": "Q?"}` + "\n" + `{"question_id": 1, "image": "a.jpg", "text": "Q?"}` + "\n",
			"", "", "question_id 1 appears twice"},
		{TaskVQAv2, "q.json", `{"data_subtype": "val2014", "questions": [{"image_id": 1, "question_id": 5, "question": "Q?"}, {"question_id": 6}]}`,
			"", "", "questions[1] (question_id 6): no valid image_id"},
		{TaskVQAv2, "q.json", `{"data_subtype": "val2014", "questions": [{"image_id": 1, "question_id": 5}]}`,
			"", "", "questions[0] (question_id 5): no question"},
		{TaskVQAv2, "q.json", `{"questions": [{"image_id": 1, "question_id": 5, "question": "Q?"}]}`, "", "", "no data_subtype"},
		{TaskVQAv2, "q.json", `{"data_subtype": "val2014", "questions": []} trailing`, "", "", "data after the JSON document"},
		{TaskVQAv2, "q.jsonl", `{"question_id": 5, "image": "a.jpg", "text": "Q?"}` + "\n",
			"a.json", `{"annotations": [{"question_id": 4, "answers": [{"answer": "x"}]}, {"question_id": 5, "answers": []}]}`, "annotations[1] (question_id 5): no answers"},
		{TaskVQAv2, "q.jsonl", `{"question_id": 5, "image": "a.jpg", "text": "Q?"}` + "\n",
			"a.json", `{"annotations": [{"question_id": 4, "answers": [{"answer": "x"}]}]}`, "no annotation for question_id 5"},
		{TaskTextVQA, "t.json", `{"data": [{"question_id": 1, "image_id": "x", "question": "Q?", "answers": ["a", "b"]}]}`, "", "", "2 answers, want 10"},
		{TaskGQA, "g.json", `{"1": {"question": "Q?", "answer": "no"}}`, "", "", `question "1": no imageId`},
	}
	for _, c := range cases {
		files := map[string]string{c.qName: c.q}
		if c.aName != "" {
			files[c.aName] = c.a
		}
		dir := writeFiles(t, files)
		aPath := ""
		if c.aName != "" {
			aPath = filepath.Join(dir, c.aName)
		}
		_, err := LoadItems(c.task, filepath.Join(dir, c.qName), aPath)
		if err == nil || !strings.Contains(err.Error(), c.wantInErr) || !strings.HasPrefix(err.Error(), "eval: ") {
			t.Errorf("%s %s: err %v, want an eval error containing %q", c.task, c.qName, err, c.wantInErr)
		}
	}
	if _, err := LoadItems("vizwiz", "x", ""); err == nil {
		t.Error("unknown task accepted")
	}
}

func TestParseTask(t *testing.T) {
	for _, s := range []string{"vqav2", "VQAv2", "gqa", "pope", "TextVQA"} {
		if _, err := ParseTask(s); err != nil {
			t.Errorf("ParseTask(%q): %v", s, err)
		}
	}
	if _, err := ParseTask("mmbench"); err == nil {
		t.Error("ParseTask accepted mmbench")
	}
}
