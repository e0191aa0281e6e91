package llava

import (
	"fmt"
	"strings"
)

// ImagePlaceholder marks where the image goes in a prompt's text.
const ImagePlaceholder = "<image>"

// Template renders a conversation into the prompt text the model was trained
// on. Templates follow haotian-liu/LLaVA llava/conversation.py (conv_vicuna_v1,
// conv_llava_v1: sep_style TWO) and llava-hf's chat_template.json.
type Template struct {
	Name   string
	System string // the default system prompt ("" for none)
	render func(system string, turns []Turn) string
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
func (t *Template) Prompt(question string, image bool) string {
	return t.Render(t.System, []Turn{{Role: "user", Text: question, Image: image}})
}

// Render renders a conversation that ends with a user turn, followed by the
// assistant's cue. system replaces the template's system prompt.
func (t *Template) Render(system string, turns []Turn) string { return t.render(system, turns) }

func turnText(u Turn) string {
	if u.Image {
		return ImagePlaceholder + "\n" + u.Text
	}
	return u.Text
}

// renderSepTwo is conversation.py's SeparatorStyle.TWO with sep " " and sep2
// "</s>": system, then "USER: m ASSISTANT: a</s>USER: m ASSISTANT:".
func renderSepTwo(system string, turns []Turn) string {
	var b strings.Builder
	b.WriteString(system)
	b.WriteString(" ")
	for _, u := range turns {
		if u.Role == "assistant" {
			b.WriteString("ASSISTANT: " + u.Text + "</s>")
		} else {
			b.WriteString("USER: " + turnText(u) + " ")
		}
	}
	b.WriteString("ASSISTANT:")
	return b.String()
}

// renderHF is llava-hf's chat template: "ROLE: " then the images as
// "<image>\n", then each text followed by a space; a system message is its
// text alone; the generation prompt is "ASSISTANT:".
func renderHF(system string, turns []Turn) string {
	var b strings.Builder
	if system != "" {
		b.WriteString(system + " ")
	}
	for _, u := range turns {
		b.WriteString(strings.ToUpper(u.Role) + ": " + turnText(u) + " ")
	}
	b.WriteString("ASSISTANT:")
	return b.String()
}

// renderRaw joins the user texts as given; the caller writes "<image>" where
// the image goes.
func renderRaw(system string, turns []Turn) string {
	var b strings.Builder
	b.WriteString(system)
	for _, u := range turns {
		b.WriteString(u.Text)
	}
	return b.String()
}
