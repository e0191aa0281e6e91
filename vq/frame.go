package vq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Wire frame layout (spec "Wire frame"), little-endian:
//
//	0   4  magic "AVQ1"
//	4   1  version, 1
//	5   1  b, bits per index = max(1, ceil(log2 K))
//	6   2  flags: 0 or FlagTokenStats
//	8   4  K
//	12  4  N
//	16  8  codebook fingerprint
//	24  P  payload, P = ceil(N·b/8): index t in stream bits [t·b, (t+1)·b), LSB first
//	    S  token statistics, only with FlagTokenStats: N × (μ, σ) fp16, S = 4N
//	    4  CRC-32C of all bytes before it
const (
	frameMagic   = "AVQ1"
	frameVersion = 1
	headerSize   = 24
	crcSize      = 4
	minFrameSize = headerSize + crcSize

	// FlagTokenStats marks a frame that carries per-token (μ, σ) after the
	// payload, so the cloud inverts the site's LayerNorm exactly.
	FlagTokenStats uint16 = 0x0001
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Kinds of frame error; every frame error is a *FrameError whose Kind is one
// of these, so callers test with errors.Is.
var (
	ErrFrameTooShort = errors.New("vq: frame too short")
	ErrMagic         = errors.New("vq: frame magic is not AVQ1")
	ErrVersion       = errors.New("vq: unsupported frame version")
	ErrFlags         = errors.New("vq: frame flags not allowed")
	ErrCRC           = errors.New("vq: frame CRC mismatch")
	ErrCodebookSize  = errors.New("vq: frame codebook size wrong")
	ErrTokenCount    = errors.New("vq: frame token count wrong")
	ErrFingerprint   = errors.New("vq: frame codebook fingerprint wrong")
	ErrBits          = errors.New("vq: frame bits per index wrong for its codebook size")
	ErrLength        = errors.New("vq: frame length disagrees with its header")
	ErrIndex         = errors.New("vq: frame index outside the codebook")
	ErrPadding       = errors.New("vq: frame padding bits not zero")
	ErrStats         = errors.New("vq: frame token statistics invalid")
)

// FrameError is a refused or unencodable frame.
type FrameError struct {
	Kind   error  // one of the Err* kinds above
	Detail string // what exactly was wrong, with the values and byte offsets
}

func (e *FrameError) Error() string { return "vq: frame: " + e.Detail }

// Unwrap returns Kind, so errors.Is(err, ErrCRC) works.
func (e *FrameError) Unwrap() error { return e.Kind }

func frameErr(kind error, format string, args ...any) *FrameError {
	return &FrameError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// Frame is the content of one wire frame: the indices of one image and,
// with FlagTokenStats, its token statistics.
type Frame struct {
	Bits        int
	Flags       uint16
	K, N        int
	Fingerprint [8]byte
	Indices     []int32  // [N]
	Stats       []uint16 // [2N] μ0, σ0, μ1, σ1, … as fp16; only with FlagTokenStats
}

// payloadSize is P = ceil(n·b/8), in uint64 so that no header can overflow it.
func payloadSize(n uint64, b int) uint64 { return (n*uint64(b) + 7) / 8 }

// Encode checks the frame's fields against each other and returns its bytes.
func (f *Frame) Encode() ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	size := uint64(minFrameSize) + payloadSize(uint64(f.N), f.Bits) + uint64(2*len(f.Stats))
	out := make([]byte, headerSize, size)
	copy(out, frameMagic)
	out[4] = frameVersion
	out[5] = byte(f.Bits)
	binary.LittleEndian.PutUint16(out[6:], f.Flags)
	binary.LittleEndian.PutUint32(out[8:], uint32(f.K))
	binary.LittleEndian.PutUint32(out[12:], uint32(f.N))
	copy(out[16:], f.Fingerprint[:])
	out = appendPacked(out, f.Indices, f.Bits)
	for _, s := range f.Stats {
		out = binary.LittleEndian.AppendUint16(out, s)
	}
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli)), nil
}

func (f *Frame) check() error {
	switch {
	case f.K < 1 || uint64(f.K) > MaxK:
		return frameErr(ErrCodebookSize, "K = %d is outside [1, %d]", f.K, MaxK)
	case f.Bits != BitsFor(f.K):
		return frameErr(ErrBits, "b = %d, but K = %d needs %d bits", f.Bits, f.K, BitsFor(f.K))
	case f.Flags&^FlagTokenStats != 0:
		return frameErr(ErrFlags, "flags %#04x has unknown bits", f.Flags)
	case f.N != len(f.Indices) || uint64(f.N) > math.MaxUint32:
		return frameErr(ErrTokenCount, "N = %d with %d indices", f.N, len(f.Indices))
	}
	want := 0
	if f.Flags&FlagTokenStats != 0 {
		want = 2 * f.N
	}
	if len(f.Stats) != want {
		return frameErr(ErrStats, "%d statistics values with flags %#04x and N = %d, want %d", len(f.Stats), f.Flags, f.N, want)
	}
	if err := checkStats(f.Stats); err != nil {
		return err
	}
	for t, i := range f.Indices {
		if i < 0 || int(i) >= f.K {
			return frameErr(ErrIndex, "index %d at token %d is outside [0, %d)", i, t, f.K)
		}
	}
	return nil
}

// checkStats refuses statistics that no LayerNorm produces: a non-finite μ
// or σ, or σ ≤ 0 (σ = sqrt(var + eps) with eps > 0).
func checkStats(stats []uint16) error {
	for i, h := range stats {
		if h&0x7c00 == 0x7c00 {
			return frameErr(ErrStats, "statistic %d of token %d is not finite (fp16 %#04x)", i%2, i/2, h)
		}
		if i%2 == 1 && (h&0x8000 != 0 || h == 0) {
			return frameErr(ErrStats, "σ of token %d is not positive (fp16 %#04x)", i/2, h)
		}
	}
	return nil
}

// appendPacked appends the indices b bits each, LSB first, with the unused
// high bits of the last byte zero.
func appendPacked(dst []byte, idx []int32, b int) []byte {
	var acc uint64
	var nacc int
	for _, v := range idx {
		acc |= uint64(uint32(v)) << nacc
		nacc += b
		for nacc >= 8 {
			dst = append(dst, byte(acc))
			acc >>= 8
			nacc -= 8
		}
	}
	if nacc > 0 {
		dst = append(dst, byte(acc))
	}
	return dst
}

// frameHeader is what parseHeader has checked: the fields that need no model.
type frameHeader struct {
	bits        int
	flags       uint16
	k, n        uint32
	fingerprint [8]byte
}

// parseHeader checks, in this order, the length against the smallest frame,
// the magic, the version, the flags and the CRC (the trailing 4 bytes).
func parseHeader(b []byte) (frameHeader, error) {
	var h frameHeader
	if len(b) < minFrameSize {
		return h, frameErr(ErrFrameTooShort, "%d bytes, the smallest frame has %d", len(b), minFrameSize)
	}
	if string(b[:4]) != frameMagic {
		return h, frameErr(ErrMagic, "magic %q at offset 0, want %q", b[:4], frameMagic)
	}
	if b[4] != frameVersion {
		return h, frameErr(ErrVersion, "version %d at offset 4, want %d", b[4], frameVersion)
	}
	h.flags = binary.LittleEndian.Uint16(b[6:])
	if h.flags&^FlagTokenStats != 0 {
		return h, frameErr(ErrFlags, "flags %#04x at offset 6 have unknown bits", h.flags)
	}
	end := len(b) - crcSize
	if want, got := binary.LittleEndian.Uint32(b[end:]), crc32.Checksum(b[:end], castagnoli); want != got {
		return h, frameErr(ErrCRC, "CRC-32C at offset %d is %08x, the bytes before it give %08x", end, want, got)
	}
	h.bits = int(b[5])
	h.k = binary.LittleEndian.Uint32(b[8:])
	h.n = binary.LittleEndian.Uint32(b[12:])
	copy(h.fingerprint[:], b[16:24])
	return h, nil
}

// body checks K, b and the exact length, then decodes the payload (indices
// below K, zero padding) and the statistics. The length is checked before
// anything is allocated, so a header cannot make it allocate more than the
// frame's own size.
func (h frameHeader) body(b []byte) (*Frame, error) {
	if h.k == 0 || uint64(h.k) > MaxK {
		return nil, frameErr(ErrCodebookSize, "K = %d at offset 8 is outside [1, %d]", h.k, MaxK)
	}
	if h.bits != BitsFor(int(h.k)) {
		return nil, frameErr(ErrBits, "b = %d at offset 5, but K = %d needs %d bits", h.bits, h.k, BitsFor(int(h.k)))
	}
	p := payloadSize(uint64(h.n), h.bits)
	var s uint64
	if h.flags&FlagTokenStats != 0 {
		s = 4 * uint64(h.n)
	}
	if want := minFrameSize + p + s; uint64(len(b)) != want {
		// A length that fits the same indices with the flag flipped
		// means the flag, not the length, is what is wrong.
		if other := minFrameSize + p + 4*uint64(h.n) - s; h.n > 0 && uint64(len(b)) == other {
			return nil, frameErr(ErrFlags, "flags %#04x at offset 6 disagree with the %d-byte length, which fits N = %d indices %s token statistics",
				h.flags, len(b), h.n, map[bool]string{true: "without", false: "with"}[s > 0])
		}
		return nil, frameErr(ErrLength, "%d bytes, but N = %d, b = %d and flags %#04x make a %d-byte frame", len(b), h.n, h.bits, h.flags, want)
	}
	f := &Frame{Bits: h.bits, Flags: h.flags, K: int(h.k), N: int(h.n), Fingerprint: h.fingerprint, Indices: make([]int32, h.n)}
	payload := b[headerSize : headerSize+p]
	padding := unpack(payload, f.Indices, h.bits)
	for t, i := range f.Indices {
		if int(i) >= f.K {
			return nil, frameErr(ErrIndex, "index %d at token %d (payload bit %d) is outside [0, %d)", i, t, t*h.bits, f.K)
		}
	}
	if padding != 0 {
		return nil, frameErr(ErrPadding, "unused high bits of payload byte %d (offset %d) are %#x, want 0", p-1, headerSize+p-1, padding)
	}
	if h.flags&FlagTokenStats != 0 {
		f.Stats = make([]uint16, 2*h.n)
		for i := range f.Stats {
			f.Stats[i] = binary.LittleEndian.Uint16(b[headerSize+p+2*uint64(i):])
		}
		if err := checkStats(f.Stats); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// unpack reads len(idx) indices of b bits each from payload and returns the
// leftover (padding) bits of the last byte.
func unpack(payload []byte, idx []int32, b int) uint64 {
	var acc uint64
	var nacc, pos int
	mask := uint64(1)<<b - 1
	for t := range idx {
		for nacc < b {
			acc |= uint64(payload[pos]) << nacc
			pos++
			nacc += 8
		}
		idx[t] = int32(acc & mask)
		acc >>= b
		nacc -= b
	}
	return acc
}

// ParseFrame decodes a frame without a model: it checks the structure
// (length, magic, version, flags, CRC, K, b against K, exact length, indices
// below K, zero padding, statistics). DecodeFrame adds the model's checks.
func ParseFrame(b []byte) (*Frame, error) {
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	return h.body(b)
}

// EncodeFrame packs one image's indices, and its token statistics when stats
// is not nil (sites ln1 and ln2 only), into a frame for this module.
func (m *Module) EncodeFrame(indices []int32, stats []uint16) ([]byte, error) {
	f := &Frame{Bits: m.Bits, K: m.K, N: len(indices), Fingerprint: m.Fingerprint, Indices: indices}
	if stats != nil {
		if !SiteIsNorm(m.Site) {
			return nil, frameErr(ErrFlags, "token statistics for a module of site %s (only ln1 and ln2 carry them)", m.Site)
		}
		f.Flags, f.Stats = FlagTokenStats, stats
	}
	return f.Encode()
}

// DecodeFrame decodes a frame for this module and a model that expects n
// tokens. After the header checks of ParseFrame it checks, in this order, K,
// N, the fingerprint and that statistics come only for sites ln1 and ln2,
// then the rest of ParseFrame's checks.
func (m *Module) DecodeFrame(b []byte, n int) (*Frame, error) {
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	switch {
	case uint64(h.k) != uint64(m.K):
		return nil, frameErr(ErrCodebookSize, "K = %d at offset 8, the module's codebook has %d entries", h.k, m.K)
	case n < 0 || uint64(h.n) != uint64(n):
		return nil, frameErr(ErrTokenCount, "N = %d at offset 12, the model expects %d tokens", h.n, n)
	case h.fingerprint != m.Fingerprint:
		return nil, frameErr(ErrFingerprint, "codebook fingerprint %x at offset 16, the module's is %x", h.fingerprint, m.Fingerprint)
	case h.flags&FlagTokenStats != 0 && !SiteIsNorm(m.Site):
		return nil, frameErr(ErrFlags, "token statistics for a module of site %s (only ln1 and ln2 carry them)", m.Site)
	}
	return h.body(b)
}
