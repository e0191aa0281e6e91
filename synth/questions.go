package synth

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Question kinds, as written to question_type (each stresses something
// compression destroys: counting small shapes, colour, position, presence,
// small print).
const (
	KindCount   = "how many"
	KindColor   = "what color"
	KindSpatial = "where is"
	KindExist   = "is there"
	KindRead    = "what is written"
)

// Kinds lists the question kinds in the order a scene asks them.
var Kinds = []string{KindCount, KindColor, KindSpatial, KindExist, KindRead}

// Question is one question about a scene with its single correct answer.
type Question struct {
	ID         int64  // ImageID*10 + its index within the scene
	ImageID    int64  // Scene.ID + 1
	Kind       string // one of Kinds
	AnswerType string // VQAv2's: "number", "yes/no" or "other"
	Text       string
	Answer     string
}

// minApart is how far apart (pixels) two objects' centres must be along an
// axis for "left of" or "above" to be asked about them.
const minApart = 30

// Questions asks one question of each kind the scene can answer
// unambiguously: counting always, the code always, presence always (yes
// and no balanced across scenes), a colour when some shape occurs once, a
// position when two objects are each unique by colour and shape and far
// enough apart.
func (s *Scene) Questions() []Question {
	r := rand.New(rand.NewPCG(s.seed^0x51ed270b2f13c1a7, uint64(s.ID)))
	img := int64(s.ID + 1)
	var qs []Question
	add := func(kind, atype, text, answer string) {
		qs = append(qs, Question{ID: img*10 + int64(len(qs)), ImageID: img, Kind: kind, AnswerType: atype, Text: text, Answer: answer})
	}
	add(KindCount, "number", "How many objects are there in the image?", strconv.Itoa(len(s.Objects)))

	shapes, names := map[string]int{}, map[string]int{}
	for _, o := range s.Objects {
		shapes[o.Shape]++
		names[o.Name()]++
	}
	var uniqueShape []Object
	for _, o := range s.Objects {
		if shapes[o.Shape] == 1 {
			uniqueShape = append(uniqueShape, o)
		}
	}
	if len(uniqueShape) > 0 {
		o := uniqueShape[r.IntN(len(uniqueShape))]
		add(KindColor, "other", fmt.Sprintf("What color is the %s?", o.Shape), o.Color)
	}

	type pair struct{ a, b Object }
	var horiz, vert []pair
	for i, a := range s.Objects {
		for j, b := range s.Objects {
			if i == j || names[a.Name()] != 1 || names[b.Name()] != 1 {
				continue
			}
			if a.X+minApart <= b.X || b.X+minApart <= a.X {
				horiz = append(horiz, pair{a, b})
			}
			if a.Y+minApart <= b.Y || b.Y+minApart <= a.Y {
				vert = append(vert, pair{a, b})
			}
		}
	}
	useVert := len(vert) > 0 && (len(horiz) == 0 || r.IntN(2) == 0)
	switch {
	case useVert:
		p := vert[r.IntN(len(vert))]
		ans := "above"
		if p.a.Y > p.b.Y {
			ans = "below"
		}
		add(KindSpatial, "other", fmt.Sprintf("Is the %s above or below the %s?", p.a.Name(), p.b.Name()), ans)
	case len(horiz) > 0:
		p := horiz[r.IntN(len(horiz))]
		ans := "left"
		if p.a.X > p.b.X {
			ans = "right"
		}
		add(KindSpatial, "other", fmt.Sprintf("Is the %s to the left or to the right of the %s?", p.a.Name(), p.b.Name()), ans)
	}

	// Presence: scenes alternate yes and no by id, so a set is balanced.
	if s.ID%2 == 0 {
		o := s.Objects[r.IntN(len(s.Objects))]
		add(KindExist, "yes/no", fmt.Sprintf("Is there a %s in the image?", o.Name()), "yes")
	} else {
		for {
			n := Colors[r.IntN(len(Colors))] + " " + Shapes[r.IntN(len(Shapes))]
			if names[n] == 0 {
				add(KindExist, "yes/no", fmt.Sprintf("Is there a %s in the image?", n), "no")
				break
			}
		}
	}

	add(KindRead, "other", "What is the code written on the label?", s.Code)
	return qs
}
