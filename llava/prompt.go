package llava

import (
	"fmt"
	"strings"

	"github.com/avq/avq/tokenizer"
)

// ImagePlaceholder marks where the image goes in a prompt's text.
const ImagePlaceholder = "<image>"

// Prompt is a rendered prompt: its text, and where in it the template put
// control tokens. The tokenizer's added tokens count only there (see
// tokenizer.EncodeControlled), so that text from a user, the system
// message included, is text: a question that spells "<s>" or "</s>" cannot
// start or end a turn. The one exception is ImagePlaceholder, which counts
// wherever it is: the raw template's caller writes it where the image goes,
// and in any other template a user's "<image>" makes a second placeholder,
// which Generate refuses (ErrNoImage) as it always has. The same rule holds
// for avq run, avq eval and avq serve, since all of them render here.
type Prompt struct {
	Text     string
	Controls []tokenizer.Span
}

// promptBuilder renders a Prompt piece by piece.
type promptBuilder struct {
	b        strings.Builder
	controls []tokenizer.Span
}

// text appends text that is not the template's control: a user's, or the
// template's own words. Its image placeholders are marked (see Prompt).
func (p *promptBuilder) text(s string) {
	at := p.b.Len()
	for rest, off := s, 0; ; {
		i := strings.Index(rest, ImagePlaceholder)
		if i < 0 {
			break
		}
		start := at + off + i
		p.controls = append(p.controls, tokenizer.Span{Start: start, End: start + len(ImagePlaceholder)})
		off += i + len(ImagePlaceholder)
		rest = rest[i+len(ImagePlaceholder):]
	}
	p.b.WriteString(s)
}

// control appends a control token the template puts there.
func (p *promptBuilder) control(s string) {
	at := p.b.Len()
	p.controls = append(p.controls, tokenizer.Span{Start: at, End: at + len(s)})
	p.b.WriteString(s)
}

func (p *promptBuilder) prompt() Prompt { return Prompt{Text: p.b.String(), Controls: p.controls} }

// Template renders a conversation into the prompt text the model was trained
// on. Templates follow haotian-liu/LLaVA llava/conversation.py (conv_vicuna_v1,
// conv_llava_v1: sep_style TWO) and llava-hf's chat_template.json.
type Template struct {
	Name   string
	System string // the default system prompt ("" for none)
	render func(p *promptBuilder, system string, turns []Turn)
}

// Turn is one message: Role "user" or "assistant". Image puts the image
// placeholder before the text, as LLaVA's prompts do.
type Turn struct {
	Role  string
	Text  string
	Image bool
}

const (
	vicunaSystem = "A chat between a curious user and an artificial intelligence assistant. " +
		"The assistant gives helpful, detailed, and polite answers to the user's questions."
	llavaSystem = "A chat between a curious human and an artificial intelligence assistant. " +
		"The assistant gives helpful, detailed, and polite answers to the human's questions."
)

// Templates by name: vicuna_v1 is LLaVA-1.5's evaluation template and the
// default for every layout; llava_v1 differs only in its system prompt; hf is
// llava-hf's chat template (no system prompt); raw passes the text as given.
var Templates = map[string]*Template{
	"vicuna_v1": {Name: "vicuna_v1", System: vicunaSystem, render: renderSepTwo},
	"llava_v1":  {Name: "llava_v1", System: llavaSystem, render: renderSepTwo},
	"hf":        {Name: "hf", render: renderHF},
	"raw":       {Name: "raw", render: renderRaw},
}

// DefaultTemplate is what every checkpoint layout uses unless told otherwise.
const DefaultTemplate = "vicuna_v1"

// LookupTemplate finds a template by name.
func LookupTemplate(name string) (*Template, error) {
	if t, ok := Templates[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("llava: unknown template %q (vicuna_v1, llava_v1, hf, raw)", name)
}

// Prompt renders a single question, with or without the image.
func (t *Template) Prompt(question string, image bool) Prompt {
	return t.Render(t.System, []Turn{{Role: "user", Text: question, Image: image}})
}

// Render renders a conversation that ends with a user turn, followed by the
// assistant's cue. system replaces the template's system prompt.
func (t *Template) Render(system string, turns []Turn) Prompt {
	var p promptBuilder
	t.render(&p, system, turns)
	return p.prompt()
}

func turnText(p *promptBuilder, u Turn) {
	if u.Image {
		p.text(ImagePlaceholder + "\n")
	}
	p.text(u.Text)
}

// renderSepTwo is conversation.py's SeparatorStyle.TWO with sep " " and sep2
// "</s>": system, then "USER: m ASSISTANT: a</s>USER: m ASSISTANT:". The
// "</s>" after each answer is the template's control token.
func renderSepTwo(p *promptBuilder, system string, turns []Turn) {
	p.text(system + " ")
	for _, u := range turns {
		if u.Role == "assistant" {
			p.text("ASSISTANT: " + u.Text)
			p.control("</s>")
		} else {
			p.text("USER: ")
			turnText(p, u)
			p.text(" ")
		}
	}
	p.text("ASSISTANT:")
}

// renderHF is llava-hf's chat template: "ROLE: " then the images as
// "<image>\n", then each text followed by a space; a system message is its
// text alone; the generation prompt is "ASSISTANT:". It puts no control
// token but the image.
func renderHF(p *promptBuilder, system string, turns []Turn) {
	if system != "" {
		p.text(system + " ")
	}
	for _, u := range turns {
		p.text(strings.ToUpper(u.Role) + ": ")
		turnText(p, u)
		p.text(" ")
	}
	p.text("ASSISTANT:")
}

// renderRaw joins the user texts as given; the caller writes "<image>" where
// the image goes. Other control tokens in the text are plain text.
func renderRaw(p *promptBuilder, system string, turns []Turn) {
	p.text(system)
	for _, u := range turns {
		p.text(u.Text)
	}
}
