package avq_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/avq/avq"

// layers is the import policy of docs/architecture.md ("Layers"), which
// shows the same table: a package may import the
// packages of the layers above its own (lower index), never its own layer's
// siblings nor anything below. internal/testutil is for tests only.
var layers = [][]string{
	{"tensor", "safetensors", "ptfile", "tokenizer", "jpeg", "asm", "internal/mmap"},
	{"backend", "backend/cpu", "backend/backendtest"},
	{"nn"},
	{"vit", "llama", "vq"},
	{"llava", "llava/preprocess"},
	{"train"},
	{"serve", "eval", "synth"},
	{"cmd/avq"},
}

// within lists the imports allowed inside one layer, which the layer rule
// alone would refuse.
var within = map[string][]string{
	"safetensors":         {"internal/mmap", "tensor"},
	"ptfile":              {"internal/mmap", "tensor"},
	"backend/cpu":         {"backend"},
	"backend/backendtest": {"backend"},
	"llava":               {"llava/preprocess"},
}

// external lists the third-party modules each package may use.
var external = map[string][]string{
	"asm":              {"golang.org/x/sys/cpu", "github.com/klauspost/cpuid/v2"},
	"internal/mmap":    {"golang.org/x/sys/unix"},
	"tokenizer":        {"google.golang.org/protobuf/encoding/protowire"},
	"llava/preprocess": {"golang.org/x/image/"},
	"synth":            {"golang.org/x/image/"},
	"backend/cpu":      {"golang.org/x/sys/cpu", "github.com/klauspost/cpuid/v2"},
}

func layerOf(pkg string) int {
	for i, l := range layers {
		for _, p := range l {
			if p == pkg {
				return i
			}
		}
	}
	return -1
}

func TestImportDirection(t *testing.T) {
	imports := map[string]map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || d.Name() == "_gen") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(path))
		if imports[pkg] == nil {
			imports[pkg] = map[string]bool{}
		}
		for _, im := range f.Imports {
			imports[pkg][strings.Trim(im.Path.Value, `"`)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		if pkg == "." {
			continue
		}
		if pkg == "internal/testutil" {
			continue // imported by tests only; checked below
		}
		own := layerOf(pkg)
		if own < 0 {
			t.Errorf("package %s is not in the layer table of deps_test.go", pkg)
			continue
		}
		for im := range imports[pkg] {
			switch {
			case strings.HasPrefix(im, module+"/"):
				dep := strings.TrimPrefix(im, module+"/")
				if dep == "internal/testutil" {
					t.Errorf("%s imports internal/testutil outside a test", pkg)
					continue
				}
				ok := layerOf(dep) >= 0 && layerOf(dep) < own
				for _, w := range within[pkg] {
					ok = ok || w == dep
				}
				if !ok {
					t.Errorf("%s (layer %d) may not import %s (layer %d)", pkg, own, dep, layerOf(dep))
				}
			case strings.Contains(strings.SplitN(im, "/", 2)[0], "."):
				ok := false
				for _, e := range external[pkg] {
					ok = ok || im == e || (strings.HasSuffix(e, "/") && strings.HasPrefix(im, e))
				}
				if !ok && !(pkg == "backend/cuda" && im == "github.com/ebitengine/purego") {
					t.Errorf("%s may not import the third-party package %s", pkg, im)
				}
			}
		}
	}
}
