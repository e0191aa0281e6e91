package synth

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Size is the side of every scene: LLaVA-1.5's input, so the preprocessing
// neither pads nor resizes it.
const Size = 336

// Shapes, colours and sizes a scene's objects are drawn from.
var (
	Shapes = []string{"circle", "square", "triangle", "diamond", "star"}
	Colors = []string{"red", "green", "blue", "yellow", "purple", "orange"}
	Sizes  = []string{"small", "large"}
)

var palette = map[string][3]float64{
	"red":    {215, 40, 40},
	"green":  {40, 165, 60},
	"blue":   {45, 85, 215},
	"yellow": {235, 205, 40},
	"purple": {140, 60, 185},
	"orange": {240, 135, 30},
}

// A code alternates letters and digits, omitting the characters small print
// confuses (I/1, O/0). Alternation keeps every character its own token in
// LLaMA's SentencePiece vocabulary, which merges runs of capitals ("SM"),
// so reading a code is reading its characters, not guessing merges.
const (
	codeLetters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	codeDigits  = "23456789"
)

// Object is one shape in a scene, centred at (X, Y) with radius R pixels.
type Object struct {
	Shape, Color, Size string
	X, Y, R            float64
}

// Name is how questions refer to the object: "red circle".
func (o Object) Name() string { return o.Color + " " + o.Shape }

// Scene is one image's content: 1–6 objects and a printed code on a label.
type Scene struct {
	ID      int // 0-based index within the set
	Objects []Object
	Code    string
	Label   image.Rectangle // where the code is printed
	seed    uint64
}

// label geometry: basicfont's 7×13 glyphs drawn at twice their size.
const (
	glyphScale = 2
	labelPad   = 5
)

// NewScene lays out scene id of the set made with seed. The same (seed, id)
// always gives the same scene.
func NewScene(seed uint64, id int) *Scene {
	r := rand.New(rand.NewPCG(seed, uint64(id)<<1))
	s := &Scene{ID: id, seed: seed}
	n := 3 + r.IntN(2)
	code := make([]byte, n)
	for i := range code {
		set := codeLetters
		if i%2 == 1 {
			set = codeDigits
		}
		code[i] = set[r.IntN(len(set))]
	}
	s.Code = string(code)
	face := basicfont.Face7x13
	w := (font.MeasureString(face, s.Code).Ceil())*glyphScale + 2*labelPad
	h := face.Metrics().Height.Ceil()*glyphScale + 2*labelPad
	x0, y0 := 6+r.IntN(Size-w-12), 6+r.IntN(Size-h-12)
	s.Label = image.Rect(x0, y0, x0+w, y0+h)

	count := 1 + r.IntN(6)
	for len(s.Objects) < count {
		o := Object{Shape: Shapes[r.IntN(len(Shapes))], Color: Colors[r.IntN(len(Colors))], Size: Sizes[r.IntN(2)]}
		o.R = 18 + 6*r.Float64()
		if o.Size == "large" {
			o.R = 34 + 8*r.Float64()
		}
		placed := false
		for range 200 {
			o.X = o.R + 4 + r.Float64()*(Size-2*o.R-8)
			o.Y = o.R + 4 + r.Float64()*(Size-2*o.R-8)
			if s.fits(o) {
				placed = true
				break
			}
		}
		if !placed { // crowded: this scene keeps the objects it has
			break
		}
		s.Objects = append(s.Objects, o)
	}
	return s
}

// fits reports whether o keeps clear of the label and the other objects.
func (s *Scene) fits(o Object) bool {
	l := s.Label.Inset(-6)
	cx := math.Max(float64(l.Min.X), math.Min(o.X, float64(l.Max.X)))
	cy := math.Max(float64(l.Min.Y), math.Min(o.Y, float64(l.Max.Y)))
	if math.Hypot(o.X-cx, o.Y-cy) < o.R+2 {
		return false
	}
	for _, p := range s.Objects {
		if math.Hypot(o.X-p.X, o.Y-p.Y) < o.R+p.R+8 {
			return false
		}
	}
	return true
}

// polygon returns the outline of a shape of radius 1 centred at the origin,
// or nil for the circle.
func polygon(shape string) [][2]float64 {
	switch shape {
	case "square":
		return [][2]float64{{-0.82, -0.82}, {0.82, -0.82}, {0.82, 0.82}, {-0.82, 0.82}}
	case "triangle":
		return [][2]float64{{0, -1}, {0.92, 0.62}, {-0.92, 0.62}}
	case "diamond":
		return [][2]float64{{0, -1}, {0.8, 0}, {0, 1}, {-0.8, 0}}
	case "star":
		p := make([][2]float64, 10)
		for i := range p {
			r := 1.0
			if i%2 == 1 {
				r = 0.45
			}
			a := -math.Pi/2 + float64(i)*math.Pi/5
			p[i] = [2]float64{r * math.Cos(a), r * math.Sin(a)}
		}
		return p
	}
	return nil
}

// inside tests a point (relative to the centre, in radii) by the even-odd
// rule.
func inside(poly [][2]float64, x, y float64) bool {
	if poly == nil {
		return x*x+y*y <= 1
	}
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		a, b := poly[i], poly[j]
		if (a[1] > y) != (b[1] > y) && x < (b[0]-a[0])*(y-a[1])/(b[1]-a[1])+a[0] {
			in = !in
		}
	}
	return in
}

// Render draws the scene: a textured, noisy two-colour gradient, shaded
// anti-aliased objects, and the code in dark print on a pale label, so that
// JPEG compression and vector quantization have real detail to lose.
func (s *Scene) Render() *image.RGBA {
	r := rand.New(rand.NewPCG(s.seed^0x9e3779b97f4a7c15, uint64(s.ID)<<1|1))
	img := image.NewRGBA(image.Rect(0, 0, Size, Size))
	pix := make([][3]float64, Size*Size)

	// Background: a gradient between two muted colours along a random
	// direction, a two-octave value-noise texture, and fine noise.
	c0, c1 := mutedColor(r), mutedColor(r)
	ang := r.Float64() * 2 * math.Pi
	dx, dy := math.Cos(ang), math.Sin(ang)
	tex := [2]*valueNoise{newValueNoise(r, 9), newValueNoise(r, 33)}
	for y := range Size {
		for x := range Size {
			t := ((float64(x)-Size/2)*dx+(float64(y)-Size/2)*dy)/Size + 0.5
			t = math.Max(0, math.Min(1, t))
			v := 18*tex[0].at(x, y) + 9*tex[1].at(x, y)
			for c := range 3 {
				pix[y*Size+x][c] = c0[c]*(1-t) + c1[c]*t + v + 5*r.NormFloat64()
			}
		}
	}

	// Objects, with 4×4 supersampled coverage and a vertical shade.
	for _, o := range s.Objects {
		poly := polygon(o.Shape)
		base := palette[o.Color]
		jit := [3]float64{8 * r.NormFloat64(), 8 * r.NormFloat64(), 8 * r.NormFloat64()}
		x0, x1 := int(o.X-o.R)-1, int(o.X+o.R)+2
		y0, y1 := int(o.Y-o.R)-1, int(o.Y+o.R)+2
		for y := max(y0, 0); y < min(y1, Size); y++ {
			for x := max(x0, 0); x < min(x1, Size); x++ {
				cov := 0
				for sy := range 4 {
					for sx := range 4 {
						px := (float64(x) + (float64(sx)+0.5)/4 - o.X) / o.R
						py := (float64(y) + (float64(sy)+0.5)/4 - o.Y) / o.R
						if inside(poly, px, py) {
							cov++
						}
					}
				}
				if cov == 0 {
					continue
				}
				a := float64(cov) / 16
				shade := 1.08 - 0.22*(float64(y)-o.Y+o.R)/(2*o.R)
				p := &pix[y*Size+x]
				for c := range 3 {
					v := (base[c]+jit[c])*shade + 4*r.NormFloat64()
					p[c] = p[c]*(1-a) + v*a
				}
			}
		}
	}

	// The label and its code.
	l := s.Label
	paper := 232 + 10*r.Float64()
	for y := l.Min.Y; y < l.Max.Y; y++ {
		for x := l.Min.X; x < l.Max.X; x++ {
			for c := range 3 {
				pix[y*Size+x][c] = paper + 3*r.NormFloat64()
			}
		}
	}
	face := basicfont.Face7x13
	tw, th := l.Dx()/glyphScale, face.Metrics().Height.Ceil()
	mask := image.NewAlpha(image.Rect(0, 0, tw, th))
	d := font.Drawer{Dst: mask, Src: image.Opaque, Face: face, Dot: fixed.P(0, face.Metrics().Ascent.Ceil())}
	d.DrawString(s.Code)
	ink := 25 + 20*r.Float64()
	for y := range th * glyphScale {
		for x := range tw * glyphScale {
			a := float64(mask.AlphaAt(x/glyphScale, y/glyphScale).A) / 255
			px, py := l.Min.X+labelPad+x, l.Min.Y+labelPad+y
			if a == 0 || px >= l.Max.X || py >= l.Max.Y {
				continue
			}
			p := &pix[py*Size+px]
			for c := range 3 {
				p[c] = p[c]*(1-a) + ink*a
			}
		}
	}

	for i, p := range pix {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = to8(p[0]), to8(p[1]), to8(p[2]), 255
	}
	return img
}

func to8(v float64) uint8 { return uint8(math.Max(0, math.Min(255, math.Round(v)))) }

// mutedColor is a background colour: mid-grey tones tinted at random, far
// from the objects' saturated palette.
func mutedColor(r *rand.Rand) [3]float64 {
	g := 90 + 80*r.Float64()
	return [3]float64{g + 25*(r.Float64()-0.5), g + 25*(r.Float64()-0.5), g + 25*(r.Float64()-0.5)}
}

// valueNoise is a grid of random values, bilinearly interpolated, in [-1, 1].
type valueNoise struct {
	cell int
	n    int
	v    []float64
}

func newValueNoise(r *rand.Rand, cell int) *valueNoise {
	n := Size/cell + 2
	v := make([]float64, n*n)
	for i := range v {
		v[i] = 2*r.Float64() - 1
	}
	return &valueNoise{cell: cell, n: n, v: v}
}

func (t *valueNoise) at(x, y int) float64 {
	fx, fy := float64(x)/float64(t.cell), float64(y)/float64(t.cell)
	ix, iy := int(fx), int(fy)
	ax, ay := fx-float64(ix), fy-float64(iy)
	g := func(i, j int) float64 { return t.v[j*t.n+i] }
	top := g(ix, iy)*(1-ax) + g(ix+1, iy)*ax
	bot := g(ix, iy+1)*(1-ax) + g(ix+1, iy+1)*ax
	return top*(1-ay) + bot*ay
}

// String describes the scene for logs and tests.
func (s *Scene) String() string {
	return fmt.Sprintf("scene %d: %d objects, code %s", s.ID, len(s.Objects), s.Code)
}
