package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/avq/avq/asm"
	"github.com/avq/avq/tensor"
)

// benchCommands are the subcommands of avq bench.
var benchCommands = map[string]struct {
	summary string
	run     func(c *cli, args []string) error
}{
	"gemm":        {"matrix products at the models' shapes, GFLOP/s", benchGemm},
	"vit":         {"the whole vision tower forward, seconds", benchViT},
	"decode":      {"one-token decoding, ms/token and memory bandwidth", benchDecode},
	"edge":        {"the edge head on one thread, against its arithmetic bound", benchEdge},
	"compression": {"bytes on the wire per image: the paper's Table 3", benchCompression},
	"split":       {"edge-cloud latency over emulated links: the paper's Figure 6", benchSplit},
	"train":       {"one image of an avq train step against the forward of the same blocks, and peak memory", benchTrain},
}

func cmdBench(c *cli, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(c.stderr, "usage: avq bench <subcommand> [flags]\n\nsubcommands:")
		names := make([]string, 0, len(benchCommands))
		for n := range benchCommands {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			fmt.Fprintf(c.stderr, "  %-12s %s\n", n, benchCommands[n].summary)
		}
		fmt.Fprintln(c.stderr, "\n'avq bench <subcommand> -h' shows its flags. Each prints a table, or with --json one JSON object per row.")
		if len(args) == 0 {
			return errUsage
		}
		return flag.ErrHelp
	}
	sub, ok := benchCommands[args[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "avq bench: unknown subcommand %q\n", args[0])
		return errUsage
	}
	defer asm.Select("") // --impl lasts for one run
	return sub.run(c, args[1:])
}

// benchOpts are the flags every bench subcommand shares.
type benchOpts struct {
	json    bool
	impl    string
	minTime time.Duration
	minReps int
}

func (c *cli) benchFlags(name, args string) (*flag.FlagSet, *benchOpts) {
	fs := c.flags("bench "+name, args)
	o := &benchOpts{}
	fs.BoolVar(&o.json, "json", false, "print one JSON object per row instead of a table")
	fs.StringVar(&o.impl, "impl", "", "kernel set of package asm (default: the best this CPU runs; "+implNames()+")")
	fs.DurationVar(&o.minTime, "min-time", 2*time.Second, "time each measurement at least this long")
	fs.IntVar(&o.minReps, "reps", 5, "and at least this many repetitions")
	return fs, o
}

func implNames() string {
	var names []string
	for _, i := range asm.Implementations() {
		if i.Available {
			names = append(names, i.Name)
		}
	}
	return strings.Join(names, ", ")
}

// start applies --impl and --threads' default and returns the thread count.
func (o *benchOpts) start(c *cli) (int, error) {
	if err := asm.Select(o.impl); err != nil {
		return 0, err
	}
	if c.threads <= 0 {
		c.threads = runtime.GOMAXPROCS(0)
	}
	return c.threads, nil
}

// timing is the result of measure: per-repetition times.
type timing struct {
	reps     int
	median   time.Duration
	min, max time.Duration
}

// measure runs f once to warm up (page faults, scratch growth), then
// repeatedly until both minReps and minTime are reached, and returns the
// median. A repetition is one call of f.
func (o *benchOpts) measure(f func()) timing {
	f()
	var ts []time.Duration
	var total time.Duration
	for len(ts) < o.minReps || total < o.minTime {
		t0 := time.Now()
		f()
		d := time.Since(t0)
		ts = append(ts, d)
		total += d
	}
	slices.Sort(ts)
	return timing{reps: len(ts), median: ts[len(ts)/2], min: ts[0], max: ts[len(ts)-1]}
}

// row is one line of a bench table: ordered columns, JSON-able values.
type row []col

type col struct {
	name  string
	value any
}

// report prints rows as a table, or as JSON lines.
func report(w io.Writer, asJSON bool, rows []row) error {
	if asJSON {
		for _, r := range rows {
			var b strings.Builder
			b.WriteByte('{')
			for i, c := range r {
				if i > 0 {
					b.WriteByte(',')
				}
				k, _ := json.Marshal(c.name)
				v, err := json.Marshal(jsonValue(c.value))
				if err != nil {
					return err
				}
				b.Write(k)
				b.WriteByte(':')
				b.Write(v)
			}
			b.WriteString("}\n")
			if _, err := io.WriteString(w, b.String()); err != nil {
				return err
			}
		}
		return nil
	}
	if len(rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for i, c := range rows[0] {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c.name)
	}
	fmt.Fprintln(tw, "\t")
	for _, r := range rows {
		for i, c := range r {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, textValue(c.value))
		}
		fmt.Fprintln(tw, "\t")
	}
	return tw.Flush()
}

// jsonValue rounds floats to 4 significant digits, which is all a timing has.
func jsonValue(v any) any {
	if f, ok := v.(float64); ok {
		if f == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return f
		}
		p := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(f))))
		return math.Round(f*p) / p
	}
	return v
}

func textValue(v any) string {
	switch x := v.(type) {
	case float64:
		switch a := math.Abs(x); {
		case a >= 100:
			return fmt.Sprintf("%.0f", x)
		case a >= 10:
			return fmt.Sprintf("%.1f", x)
		default:
			return fmt.Sprintf("%.3g", x)
		}
	}
	return fmt.Sprint(v)
}

func millis(d time.Duration) float64 { return float64(d) / 1e6 }

// randomSource is an nn.Source of named tensors with given shapes whose
// contents are made on first use from a seed derived from the name: fp16
// matrices with entries of about N(0, std²), unit LayerNorm/RMSNorm weights
// and zero biases. It stands in for a checkpoint of a real shape, so that
// benchmarks need no download.
type randomSource struct {
	dtype  tensor.DType
	shapes map[string][]int
	std    float32
}

func (s *randomSource) add(name string, shape ...int) { s.shapes[name] = shape }

func (s *randomSource) Names() []string {
	names := make([]string, 0, len(s.shapes))
	for n := range s.shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *randomSource) Tensor(name string) (*tensor.Tensor, error) {
	shape, ok := s.shapes[name]
	if !ok {
		return nil, fmt.Errorf("bench: no tensor %q", name)
	}
	if len(shape) == 1 { // norm weights and biases
		v := make([]float32, shape[0])
		if strings.HasSuffix(name, "norm.weight") || strings.HasSuffix(name, "layrnorm.weight") ||
			strings.Contains(name, "layer_norm") && strings.HasSuffix(name, ".weight") {
			for i := range v {
				v[i] = 1
			}
		}
		return tensor.FromF32(v, shape...), nil
	}
	t := tensor.New(s.dtype, shape...)
	seed := uint64(14695981039346656037)
	for _, b := range []byte(name) {
		seed = (seed ^ uint64(b)) * 1099511628211
	}
	fillRandom(t, seed, s.std)
	return t, nil
}

// fillRandom fills t (F32 or F16) with a cheap pseudo-normal sequence
// (a sum of two uniforms from xorshift64*, scaled): random enough that no
// periodic pattern flatters the memory system, and fast for gigabytes.
func fillRandom(t *tensor.Tensor, seed uint64, std float32) {
	x := seed | 1
	next := func() float32 {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		r := x * 2685821657736338717
		u1 := float32(r>>40) / (1 << 24)
		u2 := float32(r>>16&0xffffff) / (1 << 24)
		return (u1 + u2 - 1) * 2.45 * std // var of u1+u2−1 is 1/6
	}
	switch t.DType() {
	case tensor.F32:
		for i, v := 0, t.F32(); i < len(v); i++ {
			v[i] = next()
		}
	case tensor.F16:
		for i, v := 0, t.U16(); i < len(v); i++ {
			v[i] = tensor.F32ToF16(next())
		}
	default:
		panic("bench: fillRandom of " + t.DType().String())
	}
}
