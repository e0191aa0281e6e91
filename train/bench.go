package train

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/avq/avq/backend"
	"github.com/avq/avq/vit"
	"github.com/avq/avq/vq"
)

// BenchStep prepares what one image costs a training step — the quantizer
// and the student from the module's split to the point to of tower, forward
// and backward, the class token dropped — without a checkpoint, for
// `avq bench train`. zin is the image's site features [T, D], target the
// teacher's [T−1, D]. The module gets the initial DLP New would give it.
func BenchStep(b backend.Backend, tower *vit.Model, to vit.Split, init *vq.ModuleData, zin, target []float32) (func() error, error) {
	gb, ok := b.(backend.Grad)
	if !ok {
		return nil, fmt.Errorf("train: backend %s has no backward ops", b.Name())
	}
	md := cloneModule(init)
	if md.DLPIn == nil {
		rng := rand.New(rand.NewPCG(0, 0x646c70))
		md.DLPIn, md.DLPOut = linearInit(rng, md.D), linearInit(rng, md.D)
	}
	mod, err := vq.NewModule(md, b)
	if err != nil {
		return nil, err
	}
	site, err := vit.ParseSite(md.Site)
	if err != nil {
		return nil, err
	}
	from := vit.Split{Block: md.Block, Site: site}
	if !from.Before(to) || from.Before(tower.From) || tower.To.Before(to) {
		return nil, errors.New("train: the tower does not hold the blocks from the split to the target point")
	}
	cfg := tower.Config
	st := &student{b: gb, vision: tower, from: from, to: to, norm: site.IsNorm(), scale: mod.Scale, shift: mod.Shift,
		dropCLS: true, t: cfg.Tokens(), d: md.D}
	s := sample{zin: zin, target: target}
	return func() error {
		_, err := st.accumulate(mod, s, newGrads(b, md.K, md.D, false), 0.25, 1)
		return err
	}, nil
}
