package asm

import "math"

// Gemm is the register-tile micro-kernel of one kernel set, with the packing
// routines that lay out its right-hand operand. A matrix product
// C[M,N] = A[M,K]·B[K,N] is computed by a caller that blocks K into chunks of
// kc, packs each kc × NR panel of B once (PackT for B = Wᵀ with W stored
// [N, K] as a Linear weight is; PackN for B stored [K, N]), and then calls
// Tile for every MR-row block of A against every packed panel.
//
// A packed panel is kc rows of NR floats: panel[k·NR + j] = B[k, n0+j], zero
// past the matrix's last column. Panels made by one Gemm must be used with
// the same Gemm (NR differs between kernel sets).
type Gemm struct {
	MR, NR  int // the register tile: Tile computes MR rows × NR columns of C
	MRShort int // rows of TileShort; 0 when the kernel set has no short tile
	k       *kernels
}

// GemmKernel returns the micro-kernel of the kernel set in use.
func GemmKernel() Gemm {
	k := use.Load()
	return Gemm{MR: k.mr, NR: k.nr, MRShort: k.mrShort, k: k}
}

// Tile computes one MR × NR block of C:
//
//	c[i·ldc + j] = alpha·Σ_{k<kc} a[i·lda + k]·panel[k·NR + j]  (+ c[i·ldc + j] if load)
//
// for i < MR, j < NR, accumulating the sum in fp32 in k order. a holds MR
// rows of A (stride lda, kc values each), panel is a packed kc × NR panel.
func (g Gemm) Tile(kc int, a []float32, lda int, panel, c []float32, ldc int, alpha float32, load bool) {
	if kc < 0 || lda < kc || ldc < g.NR || len(panel) < kc*g.NR ||
		len(a) < (g.MR-1)*lda+kc || len(c) < (g.MR-1)*ldc+g.NR {
		panic("asm: Gemm.Tile operands too short")
	}
	g.k.tile(kc, a, lda, panel, c, ldc, alpha, load)
}

// TileShort is Tile for the first MRShort rows only (a and c need only
// MRShort rows): the last rows of a matrix cost MRShort rows instead of MR.
// It panics when MRShort is 0.
func (g Gemm) TileShort(kc int, a []float32, lda int, panel, c []float32, ldc int, alpha float32, load bool) {
	if g.MRShort == 0 {
		panic("asm: Gemm.TileShort without a short tile")
	}
	if kc < 0 || lda < kc || ldc < g.NR || len(panel) < kc*g.NR ||
		len(a) < (g.MRShort-1)*lda+kc || len(c) < (g.MRShort-1)*ldc+g.NR {
		panic("asm: Gemm.TileShort operands too short")
	}
	g.k.tileShort(kc, a, lda, panel, c, ldc, alpha, load)
}

// PackT packs a kc × NR panel of B = Wᵀ from rows of an fp32 W [N, K]:
// panel[k·NR + j] = w[j·ld + k] for j < rows (the panel's columns that exist),
// k < kc, and 0 for rows ≤ j < NR. w starts at the panel's first row and
// first k.
func (g Gemm) PackT(panel, w []float32, ld, rows, kc int) {
	g.checkPack(len(panel), len(w), ld, rows, kc)
	g.k.packT(panel, g.NR, w, ld, rows, kc)
}

// PackTF16 is PackT for binary16 weights, widened to fp32 while packing.
func (g Gemm) PackTF16(panel []float32, w []uint16, ld, rows, kc int) {
	g.checkPack(len(panel), len(w), ld, rows, kc)
	g.k.packTF16(panel, g.NR, w, ld, rows, kc)
}

// PackTBF16 is PackT for bfloat16 weights, widened to fp32 while packing.
func (g Gemm) PackTBF16(panel []float32, w []uint16, ld, rows, kc int) {
	g.checkPack(len(panel), len(w), ld, rows, kc)
	g.k.packTBF16(panel, g.NR, w, ld, rows, kc)
}

func (g Gemm) checkPack(np, nw, ld, rows, kc int) {
	if rows < 0 || rows > g.NR || kc < 0 || np < kc*g.NR || (rows > 0 && (ld < kc || nw < (rows-1)*ld+kc)) {
		panic("asm: Gemm pack operands disagree")
	}
}

// PackN packs a kc × NR panel of a B stored [K, N] (fp32, rows of stride
// ld): panel[k·NR + j] = b[k·ld + j] for j < cols, k < kc, and 0 for
// cols ≤ j < NR. It is a copy, so it has no assembly.
func (g Gemm) PackN(panel, b []float32, ld, cols, kc int) {
	nr := g.NR
	if cols < 0 || cols > nr || kc < 0 || len(panel) < kc*nr || (kc > 0 && (ld < cols || len(b) < (kc-1)*ld+cols)) {
		panic("asm: Gemm.PackN operands disagree")
	}
	for k := range kc {
		dst := panel[k*nr : (k+1)*nr]
		copy(dst, b[k*ld:k*ld+cols])
		clear(dst[cols:])
	}
}

// tileGeneric is the reference micro-kernel for generic's 4×4 tile: sixteen
// scalar accumulators, each a plain fp32 multiply-add chain in k order.
func tileGeneric(kc int, a []float32, lda int, b, c []float32, ldc int, alpha float32, load bool) {
	var acc [4][4]float32
	a0, a1, a2, a3 := a[:kc], a[lda:lda+kc], a[2*lda:2*lda+kc], a[3*lda:3*lda+kc]
	b = b[:4*kc]
	for k := range kc {
		bk := b[4*k : 4*k+4]
		b0, b1, b2, b3 := bk[0], bk[1], bk[2], bk[3]
		x0, x1, x2, x3 := a0[k], a1[k], a2[k], a3[k]
		acc[0][0] += x0 * b0
		acc[0][1] += x0 * b1
		acc[0][2] += x0 * b2
		acc[0][3] += x0 * b3
		acc[1][0] += x1 * b0
		acc[1][1] += x1 * b1
		acc[1][2] += x1 * b2
		acc[1][3] += x1 * b3
		acc[2][0] += x2 * b0
		acc[2][1] += x2 * b1
		acc[2][2] += x2 * b2
		acc[2][3] += x2 * b3
		acc[3][0] += x3 * b0
		acc[3][1] += x3 * b1
		acc[3][2] += x3 * b2
		acc[3][3] += x3 * b3
	}
	storeTile(acc[:], c, ldc, alpha, load)
}

// storeTile writes alpha·acc (+ c) into c, row by row.
func storeTile(acc [][4]float32, c []float32, ldc int, alpha float32, load bool) {
	for i, row := range acc {
		out := c[i*ldc : i*ldc+len(row)]
		for j, v := range row {
			if load {
				out[j] += alpha * v
			} else {
				out[j] = alpha * v
			}
		}
	}
}

func packTGeneric(dst []float32, nr int, src []float32, ld, rows, kc int) {
	packTRows(dst, nr, src, ld, 0, rows, 0, kc)
	zeroCols(dst, nr, rows, kc)
}

func packTF16Generic(dst []float32, nr int, src []uint16, ld, rows, kc int) {
	packTF16Rows(dst, nr, src, ld, 0, rows, 0, kc)
	zeroCols(dst, nr, rows, kc)
}

func packTBF16Generic(dst []float32, nr int, src []uint16, ld, rows, kc int) {
	packTBF16Rows(dst, nr, src, ld, 0, rows, 0, kc)
	zeroCols(dst, nr, rows, kc)
}

// packTRows is packT over rows [j0, j1) and k in [k0, k1) only; the assembly
// packs use it for the parts their 8×8 blocks do not cover.
func packTRows(dst []float32, nr int, src []float32, ld, j0, j1, k0, k1 int) {
	for j := j0; j < j1; j++ {
		for k, v := range src[j*ld+k0 : j*ld+k1] {
			dst[(k0+k)*nr+j] = v
		}
	}
}

func packTF16Rows(dst []float32, nr int, src []uint16, ld, j0, j1, k0, k1 int) {
	t := &f16Table
	for j := j0; j < j1; j++ {
		for k, h := range src[j*ld+k0 : j*ld+k1] {
			dst[(k0+k)*nr+j] = math.Float32frombits(t[h])
		}
	}
}

func packTBF16Rows(dst []float32, nr int, src []uint16, ld, j0, j1, k0, k1 int) {
	for j := j0; j < j1; j++ {
		for k, h := range src[j*ld+k0 : j*ld+k1] {
			dst[(k0+k)*nr+j] = math.Float32frombits(uint32(h) << 16)
		}
	}
}

// zeroCols clears columns [rows, nr) of a packed panel.
func zeroCols(dst []float32, nr, rows, kc int) {
	if rows == nr {
		return
	}
	for k := range kc {
		clear(dst[k*nr+rows : (k+1)*nr])
	}
}

// zeroTile is a tile with kc = 0: the sum is empty, so c becomes 0 or, with
// load, stays as it is.
func zeroTile(mr, nr int, c []float32, ldc int, load bool) {
	if load {
		return
	}
	for i := range mr {
		clear(c[i*ldc : i*ldc+nr])
	}
}
