package main

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/avq/avq/tensor"
	"github.com/avq/avq/vit"
)

func TestBenchSplit(t *testing.T) {
	dir := t.TempDir()
	csvPath, svgPath := filepath.Join(dir, "fig6.csv"), filepath.Join(dir, "fig6.svg")
	var stdout, stderr bytes.Buffer
	c := &cli{stdout: &stdout, stderr: &stderr}
	err := benchSplit(c, []string{"--model", td("tiny-llava"), "--vq", td("vq", "block0_ln1", "alignedvq.safetensors"),
		"--image", td("images", "wide_640x360.jpg"), "--bandwidths", "1,8", "--reps", "1", "--csv", csvPath, "--svg", svgPath})
	if c.cpu != nil {
		c.cpu.Close()
	}
	if err != nil {
		t.Fatal(err, stderr.String())
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) != 7 || recs[0][1] != "method" {
		t.Fatalf("csv: %v %v", recs, err)
	}
	for i, r := range recs[1:] {
		method := splitMethods[i%3].name
		payload, _ := strconv.Atoi(r[2])
		sent, _ := strconv.Atoi(r[3])
		speedup, _ := strconv.ParseFloat(r[8], 64)
		if r[1] != method || sent < payload || payload == 0 || (method == "avq-split") != (speedup == 1) {
			t.Errorf("row %v", r)
		}
		// Nothing crosses a link faster than the link.
		mbit, _ := strconv.ParseFloat(r[0], 64)
		transfer, _ := strconv.ParseFloat(r[5], 64)
		if floor := float64(sent) * 8 / (mbit * 1e6) * 1e3; transfer < floor {
			t.Errorf("row %v: %d bytes at %g Mbit/s in %.2f ms, under %.2f", r, sent, mbit, transfer, floor)
		}
	}
	if !strings.Contains(stdout.String(), "split_speedup") || strings.Count(stdout.String(), "avq-split") != 2 {
		t.Errorf("table %q", stdout.String())
	}
	svg, _ := os.ReadFile(svgPath)
	dec := xml.NewDecoder(bytes.NewReader(svg))
	rects := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg: %v", err)
		}
		if s, ok := tok.(xml.StartElement); ok && s.Name.Local == "rect" {
			rects++
		}
	}
	if rects < 2*3*3 {
		t.Errorf("svg has %d rects", rects)
	}
}

// TestShapeCheckpoint builds the --shape checkpoint at a small size and
// runs the split through it.
func TestShapeCheckpoint(t *testing.T) {
	cfg := vit.DefaultConfig()
	cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers, cfg.NumAttentionHeads = 32, 64, 3, 2
	cfg.ImageSize, cfg.PatchSize = 28, 14
	model, vqPath, err := writeShapeCheckpoint(t.TempDir(), cfg, 48, 16)
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{stdout: io.Discard, stderr: io.Discard}
	m, err := loadVisionSide(c, model, vqPath)
	if err != nil {
		t.Fatal(err)
	}
	defer c.cpu.Close()
	defer m.Checkpoint.Close()
	if m.LLM != nil || m.Projector == nil || m.Vision.To != vit.HiddenState(2) || m.VQ.K != 16 {
		t.Fatalf("loaded %+v", m)
	}
	pixels := tensor.New(tensor.F32, 3, 28, 28)
	fillRandom(pixels, 5, 1)
	e, err := m.EncodeFrame(pixels.F32(), false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.DecodeFrame(e.Frame)
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Projected.Shape(); s[0] != 4 || s[1] != 48 {
		t.Fatalf("projected features of shape %v", s)
	}
}
