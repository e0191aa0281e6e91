package main

import (
	"context"
	"errors"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/avq/avq/llava"
	"github.com/avq/avq/serve"
)

// serveSignals start a graceful drain; a second one exits at once.
var serveSignals = []os.Signal{syscall.SIGTERM, os.Interrupt}

func cmdServe(c *cli, args []string) error {
	fs := c.flags("serve", "--model DIR [--vq FILE] [--lora DIR] [--listen ADDR] [flags]")
	def := serve.DefaultOptions()
	model := fs.String("model", "", "checkpoint `folder` (llava-hf or original LLaVA)")
	tower := fs.String("vision-tower", "", "CLIP `folder` for an original-layout checkpoint")
	vqPath := fs.String("vq", "", "AlignedVQ module `file`: serve the split endpoint /v1/split")
	lora := fs.String("lora", "", "LoRA adapter `folder` (PEFT, or original LLaVA's form)")
	merge := fs.Bool("lora-merge", false, "merge the adapter into the weights at load")
	listen := fs.String("listen", "127.0.0.1:8080", "`address` to listen on (host:port; :8080 for every interface)")
	name := fs.String("name", "", "the model's name in responses (default: the folder's name)")
	template := fs.String("template", llava.DefaultTemplate, "prompt template: vicuna_v1, llava_v1, hf or raw")
	fs.IntVar(&def.Parallel, "parallel", def.Parallel, "requests running on the model at once")
	fs.IntVar(&def.MaxQueue, "max-queue", def.MaxQueue, "requests waiting beyond those; more are refused with 503")
	fs.DurationVar(&def.Timeout, "timeout", def.Timeout, "deadline of a request, from arrival to its last byte (0: none)")
	fs.DurationVar(&def.ReadTimeout, "read-timeout", def.ReadTimeout, "time a client has to send a request body")
	fs.DurationVar(&def.ShutdownTimeout, "shutdown-timeout", def.ShutdownTimeout, "on SIGTERM or SIGINT, time running requests get to finish")
	fs.DurationVar(&def.DrainDelay, "drain-delay", def.DrainDelay, "on SIGTERM or SIGINT, time /health answers 503 with the listener open, before it closes")
	fs.Int64Var(&def.MaxBody, "max-body", def.MaxBody, "largest request body, bytes")
	fs.IntVar(&def.MaxPrompt, "max-prompt", def.MaxPrompt, "largest prompt text, bytes")
	fs.IntVar(&def.MaxImagePixels, "max-image-pixels", def.MaxImagePixels, "largest image, width × height; a larger one is refused before it is decoded")
	fs.IntVar(&def.MaxUploads, "max-uploads", def.MaxUploads, "request bodies received at once, in all")
	fs.IntVar(&def.MaxUploadsPerConn, "max-uploads-per-conn", def.MaxUploadsPerConn, "request bodies received at once on one connection (HTTP/2 streams)")
	fs.Int64Var(&def.MinUploadRate, "min-upload-rate", def.MinUploadRate, "bytes a second a request body must keep up after its first 2 s (0: no minimum)")
	apiKey := fs.String("api-key", "", "require this bearer token on every endpoint but /health and /metrics (default: $AVQ_API_KEY)")
	fs.StringVar(&def.TLSCert, "tls-cert", "", "certificate `file` (PEM): serve HTTPS")
	fs.StringVar(&def.TLSKey, "tls-key", "", "private key `file` (PEM) of --tls-cert")
	fs.BoolVar(&def.Pprof, "pprof", false, "serve /debug/pprof/")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	if err := need(fs, "model"); err != nil {
		return err
	}
	opt := def
	var err error
	if opt.Template, err = llava.LookupTemplate(*template); err != nil {
		return err
	}
	opt.APIKey = *apiKey
	if opt.APIKey == "" {
		opt.APIKey = os.Getenv("AVQ_API_KEY")
	}
	opt.Name = *name
	if opt.Name == "" {
		opt.Name = filepath.Base(filepath.Clean(*model))
	}
	opt.Log = log.New(c.stderr, "avq serve: ", log.LstdFlags)
	srv, err := serve.New(opt)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	scheme := "http"
	if opt.TLSCert != "" {
		scheme = "https"
	}
	opt.Log.Printf("listening on %s://%s; loading %s", scheme, ln.Addr(), *model)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, serveSignals...)
	defer signal.Stop(sigs)
	finished := make(chan struct{})
	defer close(finished)
	aborted := make(chan struct{}) // closed on the second signal
	go func() {
		select {
		case sig := <-sigs:
			opt.Log.Printf("%v: draining; a second signal exits at once", sig)
			cancel()
		case <-finished:
			return
		}
		select {
		case sig := <-sigs:
			opt.Log.Printf("%v again: exiting without finishing the drain", sig)
			srv.Abort()
			close(aborted)
		case <-finished:
		}
	}()

	// The model loads while the listener already answers /health with 503.
	var m *llava.Model
	loaded := srv.Load(func() (*llava.Model, error) {
		var err error
		m, err = loadLocal(c, *model, *tower, *vqPath, *lora, *merge)
		return m, err
	})
	loadErr := make(chan error, 1)
	go func() {
		err := <-loaded
		if err != nil {
			cancel() // a server without its model has nothing to serve
		}
		loadErr <- err
	}()
	serveErr := srv.Serve(ctx, ln)
	if errors.Is(serveErr, serve.ErrAborted) {
		// Handlers and the loader may still use the model: the process
		// exits with them, the checkpoint is not closed under them.
		return serveErr
	}
	var lerr error
	select {
	case lerr = <-loadErr: // the loader must be done before the backend closes
	case <-aborted: // a signal during the load: the loader is left to the process exit
		return serve.ErrAborted
	}
	if m != nil {
		defer m.Checkpoint.Close()
	}
	if lerr != nil {
		return lerr
	}
	if serveErr == nil {
		opt.Log.Printf("drained; exiting")
	}
	return serveErr
}
