package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func loadPOPE(questionsPath, annotationsPath string) ([]Item, error) {
	recs, err := readLLaVA(questionsPath)
	if err != nil {
		return nil, err
	}
	items := llavaItems(recs)
	for i, rec := range recs {
		items[i].Category = rec.Category
		if items[i].Category == "" {
			items[i].Category = popeCategory(questionsPath)
		}
		if annotationsPath == "" {
			if err := checkPOPELabel(rec.Label, rec.Label == ""); err != nil {
				return nil, fmt.Errorf("eval: %s:%d: %w", questionsPath, rec.line, err)
			}
			items[i].Label = rec.Label
		}
	}
	if annotationsPath == "" {
		return items, nil
	}
	files, err := popeLabelFiles(annotationsPath)
	if err != nil {
		return nil, err
	}
	for _, file := range files {
		if err := attachPOPELabels(items, recs, file, questionsPath); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// popeCategory is the split a POPE file name gives: coco_pope_random.json ->
// random.
func popeCategory(path string) string {
	base := filepath.Base(path)
	return strings.TrimPrefix(strings.TrimSuffix(base, filepath.Ext(base)), "coco_pope_")
}

// popeLabelFiles lists the label files under path: the coco_pope_*.json files
// of a directory, in name order, or path itself.
func popeLabelFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "coco_pope_*.json"))
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", path, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("eval: %s: no coco_pope_*.json label files", path)
	}
	sort.Strings(files)
	return files, nil
}

// attachPOPELabels gives the questions of file's category its labels.
// eval_pope.py pairs a category's answers with the label file's lines by
// position (the label files number their questions afresh), so this does too,
// and checks each pair shows the same image and question.
func attachPOPELabels(items []Item, recs []llavaRecord, file, questionsPath string) error {
	category := popeCategory(file)
	labels, err := readLLaVA(file)
	if err != nil {
		return err
	}
	var idx []int
	for i := range items {
		if items[i].Category == category {
			idx = append(idx, i)
		}
	}
	if len(idx) != len(labels) {
		return fmt.Errorf("eval: %s: %d labels for %d questions of category %q in %s", file, len(labels), len(idx), category, questionsPath)
	}
	for k, lab := range labels {
		it := &items[idx[k]]
		if err := checkPOPELabel(lab.Label, false); err != nil {
			return fmt.Errorf("eval: %s:%d: %w", file, lab.line, err)
		}
		if lab.Image != it.Image || TaskPOPE.Prompt(lab.Text) != TaskPOPE.Prompt(it.Question) {
			return fmt.Errorf("eval: %s:%d (%s, %q) does not match %s:%d (%s, %q)",
				file, lab.line, lab.Image, lab.Text, questionsPath, recs[idx[k]].line, it.Image, it.Question)
		}
		it.Label = lab.Label
	}
	return nil
}

func checkPOPELabel(label string, mayBeEmpty bool) error {
	if label == "yes" || label == "no" || (mayBeEmpty && label == "") {
		return nil
	}
	return fmt.Errorf("label %q is neither \"yes\" nor \"no\"", label)
}
