package preprocess

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestJPEGCorpusAsPillow decodes every file of package jpeg's corpus as a
// user's image and compares it, value for value, with Pillow 9.4's
// Image.open(f).convert("RGB") (stored as PNG, whose decode is exact).
func TestJPEGCorpusAsPillow(t *testing.T) {
	dir := filepath.Join("..", "..", "jpeg", "testdata", "corpus")
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Files map[string]string }
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Files) < 25 {
		t.Fatalf("corpus lists %d files", len(m.Files))
	}
	for name, how := range m.Files {
		got, err := DecodeFile(filepath.Join(dir, name+".jpg"), DecodeOptions{})
		if err != nil {
			t.Errorf("%s (%s): %v", name, how, err)
			continue
		}
		want, err := DecodeFile(filepath.Join(dir, name+".png"), DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("%s (%s): RGB differs from Pillow's", name, how)
		}
	}
}
