package main

import (
	"fmt"

	"github.com/avq/avq/eval"
	"github.com/avq/avq/synth"
)

func cmdSynth(c *cli, args []string) error {
	fs := c.flags("synth", "")
	seed := fs.Uint64("seed", 0, "seed: the same seed makes the same set, byte for byte")
	count := fs.Int("count", 0, "number of scenes (each asks up to five questions)")
	out := fs.String("out", "", "empty `folder` for images/, questions.json, annotations.json, train.json")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if *count <= 0 || *out == "" {
		return fmt.Errorf("--count N (N ≥ 1) and --out FOLDER are required")
	}
	bar := eval.NewProgress(c.stderr, isTerminal(c.stderr))
	err := synth.Write(*out, synth.Options{Seed: *seed, Count: *count, Progress: func(done int) { bar.Update(done, *count) }})
	bar.Finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %d scenes to %s (seed %d)\n", *count, *out, *seed)
	return nil
}
