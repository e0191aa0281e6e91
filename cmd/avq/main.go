// Command avq runs LLaVA-1.5 split between an edge device and the cloud with
// AlignedVQ, or whole on one machine. See the README for the commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"

	"github.com/avq/avq/backend/cpu"
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	summary string
	run     func(c *cli, args []string) error
}

var commands = map[string]command{
	"bench":     {"measure kernels and models against peers", cmdBench},
	"calibrate": {"fit an AlignedVQ codebook and residual map on images", cmdCalibrate},
	"convert":   {"rewrite a checkpoint (PyTorch pickles) as safetensors, optionally merging a LoRA", cmdConvert},
	"edge":      {"run the edge head: an image to an AlignedVQ frame, sent to a server with --cloud", cmdEdge},
	"eval":      {"score a model on VQAv2, GQA, POPE or TextVQA (local, split or remote)", cmdEval},
	"features":  {"write the vision features of an image (safetensors)", cmdFeatures},
	"inspect":   {"list a checkpoint's or file's tensors, metadata and model", cmdInspect},
	"run":       {"answer a prompt about an image", cmdRun},
	"serve":     {"serve the cloud role over HTTP: the split protocol and OpenAI chat completions", cmdServe},
	"synth":     {"generate a synthetic visual-question set (VQAv2 and LLaVA formats) from a seed", cmdSynth},
	"train":     {"fine-tune an AlignedVQ module (DLP, codebook) by distillation, or with a LoRA on LLaVA conversations", cmdTrain},
}

// cli carries the streams and the common flags of one invocation.
type cli struct {
	stdout, stderr io.Writer
	cpuProfile     string
	memProfile     string
	threads        int
	cpu            *cpu.CPU // made on first use, closed when the command ends
	stopProfile    func()   // set when parse starts the profiles
}

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) }

// Main runs avq with args and returns the exit status. Errors are printed as
// one line; a panic is reported as an internal error, never as a trace
// (AVQ_DEBUG=1 prints the trace too).
func Main(args []string, stdout, stderr io.Writer) (status int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "avq: internal error: %v\n", r)
			if os.Getenv("AVQ_DEBUG") != "" {
				stderr.Write(debug.Stack())
			}
			status = 1
		}
	}()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "avq: unknown command %q (avq help lists them)\n", args[0])
		return 2
	}
	c := &cli{stdout: stdout, stderr: stderr}
	err := cmd.run(c, args[1:])
	if c.stopProfile != nil {
		c.stopProfile()
	}
	if c.cpu != nil {
		c.cpu.Close()
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "avq %s: %s\n", args[0], oneLine(err.Error()))
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: avq <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\n'avq <command> -h' shows a command's flags.")
}

// flags makes a command's flag set with the flags every command shares.
func (c *cli) flags(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("avq "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: avq %s %s\n\nflags:\n", name, args)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile to `file`")
	fs.StringVar(&c.memProfile, "memprofile", "", "write a heap profile to `file` at exit")
	fs.IntVar(&c.threads, "threads", 0, "compute threads (0: GOMAXPROCS)")
	return fs
}

// parse parses args; positional arguments are refused unless want allows them.
func (c *cli) parse(fs *flag.FlagSet, args []string, positional int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > positional {
		fmt.Fprintf(c.stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(positional))
		fs.Usage()
		return errUsage
	}
	// Every command parses its flags here, so every command honours
	// --cpuprofile and --memprofile; Main stops the profiles when it ends.
	stop, err := c.profile()
	if err != nil {
		return err
	}
	c.stopProfile = stop
	return nil
}

// need reports a missing required flag.
func need(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && f.Value.String() == "" {
			return fmt.Errorf("--%s is required", n)
		}
	}
	return nil
}

// profile starts the profiles the flags ask for; the returned func stops them.
func (c *cli) profile() (func(), error) {
	stop := func() {}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		stop = func() { pprof.StopCPUProfile(); f.Close() }
	}
	if c.memProfile != "" {
		cpuStop := stop
		stop = func() {
			cpuStop()
			f, err := os.Create(c.memProfile)
			if err != nil {
				fmt.Fprintf(c.stderr, "avq: memprofile: %v\n", err)
				return
			}
			runtime.GC()
			if err := pprof.WriteHeapProfile(f); err != nil {
				fmt.Fprintf(c.stderr, "avq: memprofile: %v\n", err)
			}
			f.Close()
		}
	}
	return stop, nil
}

// backend is the command's compute backend, one per invocation.
func (c *cli) backend() *cpu.CPU {
	if c.cpu == nil {
		c.cpu = cpu.New(c.threads)
	}
	return c.cpu
}
