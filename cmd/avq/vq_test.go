package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/safetensors"
)

// refFrame writes a reference frame of a module to a temp file.
func refFrame(t *testing.T, module, image string) (string, []byte) {
	ref := testutil.Ref(t, "ref", "vq", module, "vq.safetensors")
	frame := testutil.Tensor(t, ref, image+".frame").Bytes()
	path := filepath.Join(t.TempDir(), image+".avq")
	writeFile(t, path, frame)
	return path, frame
}

func TestEdgeFrameEqualsReference(t *testing.T) {
	for _, module := range []string{"block0_ln1", "block1_ln2"} {
		out := filepath.Join(t.TempDir(), "f.avq")
		status, stdout, stderr := avq(t, "edge", "--model", td("tiny-llava"), "--vq", td("vq", module, "alignedvq.safetensors"),
			"--image", td("images", "square_336.png"), "--aspect", "pad", "--out", out)
		if status != 0 {
			t.Fatal(stderr)
		}
		got := readFile(t, out)
		_, want := refFrame(t, module, "square_336")
		if !bytes.Equal(got, want) || !strings.Contains(stdout, strconv.Itoa(len(want))+" bytes") {
			t.Fatalf("%s: frame of %d bytes differs from the reference's %d (stdout %q)", module, len(got), len(want), stdout)
		}
	}
}

func TestRunFromReferenceFrame(t *testing.T) {
	var f struct {
		Cases []struct {
			Image        string  `json:"image"`
			Question     string  `json:"question"`
			GeneratedIDs []int32 `json:"generated_ids"`
		}
	}
	if err := json.Unmarshal(readFile(t, td("ref", "vq", "block0_ln1", "cases.json")), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 3 {
		t.Fatalf("ref/vq/block0_ln1/cases.json holds %d cases", len(f.Cases))
	}
	for _, c := range f.Cases[:3] {
		path, frame := refFrame(t, "block0_ln1", c.Image)
		status, out, stderr := avq(t, "run", "--model", td("tiny-llava"), "--vq", td("vq", "block0_ln1", "alignedvq.safetensors"),
			"--frame", path, "--prompt", c.Question, "--max-tokens", "24", "--json")
		if status != 0 {
			t.Fatal(stderr)
		}
		var got runOutput
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.IDs) != fmt.Sprint(c.GeneratedIDs) || got.FrameBytes == nil || *got.FrameBytes != len(frame) {
			t.Fatalf("%s: ids %v, want %v; frame_bytes %v", c.Image, got.IDs, c.GeneratedIDs, got.FrameBytes)
		}
	}
	// Head and tail in one process report the bytes on the wire too.
	status, out, stderr := avq(t, "run", "--model", td("tiny-llava"), "--vq", td("vq", "block1_ln2", "alignedvq.safetensors"),
		"--image", td("images", "square_336.png"), "--aspect", "pad", "--prompt", "What is in the image?", "--max-tokens", "4", "--json")
	if status != 0 || !strings.Contains(out, `"frame_bytes":678`) {
		t.Fatalf("status %d, out %q, stderr %q", status, out, stderr)
	}
}

func TestFeaturesFromFrame(t *testing.T) {
	path, _ := refFrame(t, "block1_ln2", "tall_200x500")
	out := filepath.Join(t.TempDir(), "f.safetensors")
	status, _, stderr := avq(t, "features", "--model", td("tiny-llava"), "--vq", td("vq", "block1_ln2", "alignedvq.safetensors"),
		"--frame", path, "--out", out)
	if status != 0 {
		t.Fatal(stderr)
	}
	f, err := safetensors.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ref := testutil.Ref(t, "ref", "vq", "block1_ln2", "vq.safetensors")
	if got, want := testutil.Tensor(t, f, "vq.indices").I32(), testutil.Tensor(t, ref, "tall_200x500.indices").I32(); !slices.Equal(got, want) {
		t.Fatalf("vq.indices differ from the frame's:\n got %v\nwant %v", got, want)
	}
	testutil.CloseTensor(t, "vq.z_out", testutil.Tensor(t, f, "vq.z_out"), testutil.Tensor(t, ref, "tall_200x500.Z_out"), 1e-4, 0.99999)
	testutil.CloseTensor(t, "image_features", testutil.Tensor(t, f, "image_features"), testutil.Tensor(t, ref, "tall_200x500.selected"), 1e-4, 0.99999)
	testutil.CloseTensor(t, "projected", testutil.Tensor(t, f, "projected"), testutil.Tensor(t, ref, "tall_200x500.projector"), 1e-4, 0.99999)

	// From the image: z_in is there too.
	status, _, stderr = avq(t, "features", "--model", td("tiny-llava"), "--vq", td("vq", "block1_ln2", "alignedvq.safetensors"),
		"--image", td("images", "tall_200x500.png"), "--aspect", "pad", "--out", out)
	if status != 0 {
		t.Fatal(stderr)
	}
	g, err := safetensors.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	testutil.CloseTensor(t, "vq.z_in", testutil.Tensor(t, g, "vq.z_in"), testutil.Tensor(t, ref, "tall_200x500.Z_in"), 1e-4, 0.99999)
}

// TestBadFramesRefused: every malformed frame of the fixtures gives one
// error line naming the problem.
func TestBadFramesRefused(t *testing.T) {
	bad := testutil.Ref(t, "vq", "block1_ln2", "bad_frames.safetensors")
	dir := t.TempDir()
	// The fixtures' list (testdata/FIXTURES.md); a frame missing from the
	// file fails in testutil.Tensor rather than going untested.
	names := []string{"bad_magic", "bad_version", "unknown_flags", "crc_mismatch", "wrong_K", "wrong_N", "wrong_fingerprint",
		"wrong_b", "truncated_payload", "oversized_payload", "truncated_header", "index_ge_K", "empty"}
	if len(bad.Names()) != len(names)-1 {
		t.Fatalf("bad_frames.safetensors holds %d frames, the fixtures list %d", len(bad.Names()), len(names)-1)
	}
	for _, name := range names {
		path := filepath.Join(dir, name)
		var b []byte
		if name != "empty" {
			b = testutil.Tensor(t, bad, name).Bytes()
		}
		writeFile(t, path, b)
		status, _, stderr := avq(t, "run", "--model", td("tiny-llava"), "--vq", td("vq", "block1_ln2", "alignedvq.safetensors"),
			"--frame", path, "--prompt", "hi", "--max-tokens", "1")
		if status != 1 || !strings.Contains(stderr, "vq: frame") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: status %d, stderr %q", name, status, stderr)
		}
	}
	// A frame made for another codebook is refused by its fingerprint.
	path, _ := refFrame(t, "block0_ln1", "square_336")
	status, _, stderr := avq(t, "run", "--model", td("tiny-llava"), "--vq", td("vq", "block1_ln2", "alignedvq.safetensors"),
		"--frame", path, "--prompt", "hi")
	if status != 1 || !strings.Contains(stderr, "vq: frame") {
		t.Fatalf("a frame from another codebook: status %d, %q", status, stderr)
	}
}

func TestCalibrateIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	run := func(k, out string) string {
		status, stdout, stderr := avq(t, "calibrate", "--model", td("tiny-llava"), "--images", td("images"), "--codebook", k,
			"--seed", "7", "--iters", "10", "--out", filepath.Join(dir, out))
		if status != 0 {
			t.Fatal(stderr)
		}
		return stdout
	}
	run("32", "a")
	run("32", "b")
	if !bytes.Equal(readFile(t, filepath.Join(dir, "a")), readFile(t, filepath.Join(dir, "b"))) {
		t.Fatal("two runs with one seed wrote different modules")
	}
	mse := func(out string) float64 {
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, "quantization error (mean ‖z − e‖² per token): "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("quantization error %q: %v", v, err)
				}
				return f
			}
		}
		t.Fatalf("no quantization error in %q", out)
		return 0
	}
	if small, large := mse(run("16", "c")), mse(run("128", "d")); !(large < small) {
		t.Fatalf("quantization error %g at K=128 is not below %g at K=16", large, small)
	}
	status, _, stderr := avq(t, "calibrate", "--model", td("tiny-llava"), "--images", td("images"), "--codebook", "5000", "--out", filepath.Join(dir, "e"))
	if status != 1 || !strings.Contains(stderr, "distinct") {
		t.Fatalf("K above the distinct points: status %d, %q", status, stderr)
	}
}

func TestBenchCompression(t *testing.T) {
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb}
	defer func() {
		if c.cpu != nil {
			c.cpu.Close()
		}
	}()
	err := benchCompression(c, []string{"--model", td("tiny-llava"), "--vq", td("vq", "block1_ln2", "alignedvq.safetensors"),
		"--images", td("images"), "--aspect", "pad", "--json"})
	if err != nil {
		t.Fatal(err, errb.String())
	}
	rows := map[string]float64{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		rows[r["data sent"].(string)] = r["bytes"].(float64)
	}
	// 577 tokens × 9 bits = 650 bytes of payload, 678 with the frame around it.
	if rows["AlignedVQ indices (577 × 9 bits)"] != 650 || rows["AlignedVQ indices + token statistics"] != 650+4*577 ||
		rows["frame overhead (header 24 + CRC 4)"] != 28 || rows["features, fp16 (577 × 64)"] != 577*64*2 {
		t.Fatalf("rows: %v", rows)
	}
	if rows["model image (RGB, 8 bit)"] != 336*336*3 ||
		!(rows["JPEG of it, quality 10"] < rows["JPEG of it, quality 90"] && rows["JPEG of it, quality 90"] < rows["model image (RGB, 8 bit)"]) {
		t.Fatalf("JPEG sizes out of order: %v", rows)
	}
}
