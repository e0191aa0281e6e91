package vit

import (
	"fmt"
	"strings"
)

// Site is a place inside a block where the computation can be cut.
type Site uint8

const (
	SiteLN1  Site = iota // LN1(x_k): the attention's input
	SiteAttn             // h_k = x_k + Attn(LN1(x_k))
	SiteLN2              // LN2(h_k): the MLP's input
	SiteFFN              // x_{k+1} = h_k + MLP(LN2(h_k))
)

var siteNames = [...]string{"ln1", "attn", "ln2", "ffn"}

func (s Site) String() string {
	if int(s) < len(siteNames) {
		return siteNames[s]
	}
	return fmt.Sprintf("Site(%d)", s)
}

// ParseSite reads "ln1", "attn", "ln2" or "ffn".
func ParseSite(s string) (Site, error) {
	for i, n := range siteNames {
		if strings.EqualFold(s, n) {
			return Site(i), nil
		}
	}
	return 0, fmt.Errorf("vit: unknown split site %q (ln1, attn, ln2, ffn)", s)
}

// IsNorm reports whether the site is a LayerNorm output, whose residual the
// cloud must rebuild.
func (s Site) IsNorm() bool { return s == SiteLN1 || s == SiteLN2 }

// Split is a point in the forward pass: after site Site of block Block.
// Points are ordered by (Block, Site). Two points sit outside the blocks:
// Pixels (nothing computed yet) and Embedded (x_0, after pre_layrnorm), which
// are the ln1 and ffn sites of a notional block −1.
type Split struct {
	Block int
	Site  Site
}

var (
	Pixels   = Split{Block: -1, Site: SiteLN1}
	Embedded = Split{Block: -1, Site: SiteFFN}
)

// HiddenState is the point where transformers' hidden_states[l] is the
// residual stream: l = 0 is Embedded, l = k+1 is the output of block k.
func HiddenState(l int) Split { return Split{Block: l - 1, Site: SiteFFN} }

func (p Split) String() string { return fmt.Sprintf("block %d %v", p.Block, p.Site) }

// Before reports whether p comes strictly before q.
func (p Split) Before(q Split) bool {
	return p.Block < q.Block || (p.Block == q.Block && p.Site < q.Site)
}

// next is the point one segment after p.
func (p Split) next() Split {
	if p.Site == SiteFFN {
		return Split{Block: p.Block + 1, Site: SiteLN1}
	}
	return Split{Block: p.Block, Site: p.Site + 1}
}

// Validate checks that p is a point inside a tower of cfg's depth.
func (p Split) Validate(cfg Config) error {
	if p.Block < 0 || p.Block >= cfg.NumHiddenLayers || p.Site > SiteFFN {
		return fmt.Errorf("vit: split %v is outside the %d-block tower", p, cfg.NumHiddenLayers)
	}
	return nil
}
