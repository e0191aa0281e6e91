package asm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchEachImplementation runs f as a sub-benchmark per available kernel set.
func benchEachImplementation(b *testing.B, f func(b *testing.B)) {
	for _, impl := range Implementations() {
		if !impl.Available {
			continue
		}
		b.Run(impl.Name, func(b *testing.B) {
			if err := Select(impl.Name); err != nil {
				b.Fatal(err)
			}
			defer Select("")
			f(b)
		})
	}
}

// BenchmarkGemmTile measures the micro-kernel alone: one MR-row block of a
// (in L1) against a 256-deep panel, the shape the backend's blocking feeds it.
func BenchmarkGemmTile(b *testing.B) {
	benchEachImplementation(b, func(b *testing.B) {
		g := GemmKernel()
		const kc = 256
		r := rand.New(rand.NewPCG(1, 1))
		a, panel, c := make([]float32, g.MR*kc), make([]float32, kc*g.NR), make([]float32, g.MR*g.NR)
		randVec(r, a)
		randVec(r, panel)
		for b.Loop() {
			g.Tile(kc, a, kc, panel, c, g.NR, 1, true)
		}
		b.ReportMetric(float64(2*g.MR*g.NR*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}

func BenchmarkGemmPackF16(b *testing.B) {
	benchEachImplementation(b, func(b *testing.B) {
		g := GemmKernel()
		const kc, ld = 256, 4096
		w := make([]uint16, g.NR*ld)
		panel := make([]float32, kc*g.NR)
		b.SetBytes(int64(2 * kc * g.NR))
		for b.Loop() {
			g.PackTF16(panel, w, ld, g.NR, kc)
		}
	})
}

func BenchmarkDot(b *testing.B) {
	for _, n := range []int{64, 128, 4096} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			benchEachImplementation(b, func(b *testing.B) {
				x, y := make([]float32, n), make([]float32, n)
				b.SetBytes(int64(8 * n))
				for b.Loop() {
					Dot(x, y)
				}
			})
		})
	}
}

// BenchmarkGemvF16 streams a 4096×4096 fp16 matrix (32 MiB: about the L3)
// per call; GB/s is its weight bandwidth.
func BenchmarkGemvF16(b *testing.B) {
	benchEachImplementation(b, func(b *testing.B) {
		const n, k = 4096, 4096
		w := make([]uint16, n*k)
		randF16(rand.New(rand.NewPCG(2, 2)), w)
		x, y := make([]float32, k), make([]float32, n)
		b.SetBytes(int64(2 * n * k))
		for b.Loop() {
			GemvF16(y, w, k, x)
		}
	})
}

func BenchmarkWidenF16(b *testing.B) {
	benchEachImplementation(b, func(b *testing.B) {
		src, dst := make([]uint16, 4096), make([]float32, 4096)
		b.SetBytes(2 * 4096)
		for b.Loop() {
			WidenF16(dst, src)
		}
	})
}
