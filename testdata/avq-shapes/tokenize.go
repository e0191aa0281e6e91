//go:build ignore

// tokenize.go turns an `avq synth` set into the token ids train.py trains
// on, with avq's own tokenizer and vicuna_v1 template, so that training sees
// exactly the ids inference will. For each scene it writes several
// multi-turn conversations (the scene's questions in random orders, the
// image in the first turn, as LLaVA-1.5 trains) and marks the answer tokens,
// "</s>" included, as the ones to learn.
//
//	go run tokenize.go SET_DIR TOKENIZER_DIR ORDERINGS OUT.json
package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/tokenizer"
)

type conv struct {
	Image         string `json:"image"`
	Conversations []struct {
		From  string `json:"from"`
		Value string `json:"value"`
	} `json:"conversations"`
}

type sample struct {
	Image  string    `json:"image"`
	Orders [][]int32 `json:"ids"`    // per ordering, the token ids
	Labels [][]bool  `json:"labels"` // per ordering, which ids are answer tokens to learn
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: go run tokenize.go SET_DIR TOKENIZER_DIR ORDERINGS OUT.json")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4]); err != nil {
		fmt.Fprintln(os.Stderr, "tokenize:", err)
		os.Exit(1)
	}
}

func run(dir, tokDir, orderings, out string) error {
	n, err := strconv.Atoi(orderings)
	if err != nil || n < 1 {
		return fmt.Errorf("orderings %q: a positive count", orderings)
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "train.json"))
	if err != nil {
		return err
	}
	var convs []conv
	if err := json.Unmarshal(raw, &convs); err != nil {
		return err
	}
	type qa struct{ q, a string }
	byImage := map[string][]qa{}
	for _, c := range convs {
		q := c.Conversations[0].Value[len(llava.ImagePlaceholder+"\n"):]
		byImage[c.Image] = append(byImage[c.Image], qa{q, c.Conversations[1].Value})
	}
	images := make([]string, 0, len(byImage))
	for im := range byImage {
		images = append(images, im)
	}
	sort.Strings(images)
	tmpl := llava.Templates["vicuna_v1"]
	r := rand.New(rand.NewPCG(7, 7))
	var samples []sample
	for _, im := range images {
		s := sample{Image: im}
		for range n {
			qs := append([]qa(nil), byImage[im]...)
			r.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
			var turns []llava.Turn
			var prefixes [][]int32 // the prompt before each answer, as inference sees it
			for i, p := range qs {
				turns = append(turns, llava.Turn{Role: "user", Text: p.q, Image: i == 0})
				pr := tmpl.Render(tmpl.System, turns)
				prefixes = append(prefixes, tok.EncodeControlled(pr.Text, pr.Controls, true))
				turns = append(turns, llava.Turn{Role: "assistant", Text: p.a})
			}
			// The full conversation; Render appends the next cue, which is
			// cut off again.
			pr := tmpl.Render(tmpl.System, turns)
			ids := tok.EncodeControlled(pr.Text, pr.Controls, true)
			last := len(ids)
			for last > 0 && ids[last-1] != tok.EOS() {
				last--
			}
			ids = ids[:last]
			labels := make([]bool, len(ids))
			for i, pre := range prefixes {
				c := len(pre)
				if c > len(ids) || fmt.Sprint(ids[:c]) != fmt.Sprint(pre) {
					return fmt.Errorf("%s: the prompt before answer %d does not tokenize as a prefix of the conversation", im, i)
				}
				// The answer runs from the cue to its "</s>".
				end := c
				for end < len(ids) && ids[end] != tok.EOS() {
					end++
				}
				if end == len(ids) {
					return fmt.Errorf("%s: answer %d (%q) has no </s>", im, i, qs[i].a)
				}
				for k := c; k <= end; k++ {
					labels[k] = true
				}
			}
			s.Orders = append(s.Orders, ids)
			s.Labels = append(s.Labels, labels)
		}
		samples = append(samples, s)
	}
	b, err := json.Marshal(samples)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
