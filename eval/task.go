package eval

import (
	"fmt"
	"strings"
)

// Task names a benchmark; its value is the name used on the command line and
// in reports.
type Task string

const (
	TaskVQAv2   Task = "vqav2"
	TaskGQA     Task = "gqa"
	TaskPOPE    Task = "pope"
	TaskTextVQA Task = "textvqa"
)

// ParseTask returns the task named s (case-insensitive).
func ParseTask(s string) (Task, error) {
	for _, t := range [...]Task{TaskVQAv2, TaskGQA, TaskPOPE, TaskTextVQA} {
		if strings.EqualFold(s, string(t)) {
			return t, nil
		}
	}
	return "", fmt.Errorf("eval: unknown task %q (want one of vqav2, gqa, pope, textvqa)", s)
}

// ShortAnswerSuffix is the response-format instruction LLaVA-1.5 appends to
// every VQAv2, GQA, TextVQA and POPE question. It is already part of the
// "text" field of LLaVA's question files (llava_vqav2_mscoco_test-dev2015.jsonl,
// llava_gqa_testdev_balanced.jsonl, llava_textvqa_val_v051_ocr.jsonl,
// llava_pope_test.jsonl; see haotian-liu/LLaVA docs/Evaluation.md), which
// llava/eval/model_vqa_loader.py passes to the model unchanged.
const ShortAnswerSuffix = "\nAnswer the question using a single word or phrase."

// Prompt is the text the model is asked for question: the question followed
// by the task's response-format suffix. A question that already ends with the
// suffix (as in LLaVA's question files) is returned unchanged, so both kinds of
// question file give the model the same prompt.
func (t Task) Prompt(question string) string {
	switch t {
	case TaskVQAv2, TaskGQA, TaskPOPE, TaskTextVQA:
		if strings.HasSuffix(question, ShortAnswerSuffix) {
			return question
		}
		return question + ShortAnswerSuffix
	}
	panic("eval: Prompt on an unknown task")
}

// Item is one question of a benchmark with whatever ground truth the
// annotation files give for it.
type Item struct {
	QuestionID string // unique within a question set
	// Image is the image file name as the dataset names it, relative to the
	// task's image folder (e.g. COCO_val2014_000000262148.jpg); the Answerer
	// resolves it.
	Image    string
	Question string // question text before the task's suffix (see Task.Prompt)
	// Answers holds the ground truth: VQAv2 and TextVQA the ten human answers,
	// GQA the one gold answer. Nil when the annotations are not available
	// (e.g. VQAv2 test-dev, scored by the EvalAI server).
	Answers      []string
	Label        string // POPE: "yes" or "no"; empty when unknown
	AnswerType   string // VQAv2 answer_type; GQA "open" or "binary"
	QuestionType string // VQAv2 question_type; GQA structural type
	Category     string // POPE split: adversarial, popular or random
}

// hasTruth reports whether item carries the ground truth task scores against.
func (it *Item) hasTruth(t Task) bool {
	if t == TaskPOPE {
		return it.Label != ""
	}
	return len(it.Answers) > 0
}
