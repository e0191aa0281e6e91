package vq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/avq/avq/backend/cpu"
	"github.com/avq/avq/internal/testutil"
	"github.com/avq/avq/tensor"
)

// frameKinds maps cases.json's parse_error_kind_in_reference to our kinds.
var frameKinds = map[string]error{
	"truncated":   ErrFrameTooShort,
	"magic":       ErrMagic,
	"version":     ErrVersion,
	"flags":       ErrFlags,
	"crc":         ErrCRC,
	"k":           ErrCodebookSize,
	"n":           ErrTokenCount,
	"fingerprint": ErrFingerprint,
	"b":           ErrBits,
	"length":      ErrLength,
	"index":       ErrIndex,
}

// checkKind fails unless err is a *FrameError of the given kind.
func checkKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	var fe *FrameError
	switch {
	case err == nil:
		t.Errorf("%s: accepted, want %v", what, kind)
	case !errors.As(err, &fe) || !errors.Is(err, kind):
		t.Errorf("%s: %v, want kind %v", what, err, kind)
	case !strings.HasPrefix(err.Error(), "vq: frame: "):
		t.Errorf("%s: message %q lacks the \"vq: frame: \" prefix", what, err)
	}
}

func TestBadFramesRefused(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	for _, name := range modules {
		m := loadFixture(t, b, name)
		c := readCases(t, name)
		bad := testutil.Ref(t, "vq", name, "bad_frames.safetensors")
		for _, bf := range c.BadFrames {
			kind, ok := frameKinds[bf.Kind]
			if !ok {
				t.Fatalf("%s %s: unknown reference kind %q", name, bf.Name, bf.Kind)
			}
			var frame []byte
			if bf.Name != "empty" {
				frame = testutil.Tensor(t, bad, bf.Name).Bytes()
			}
			_, err := m.DecodeFrame(frame, 577)
			checkKind(t, name+" "+bf.Name, err, kind)
			if err != nil {
				t.Logf("%s %s: %v", name, bf.Name, err)
			}
		}
		if got, want := len(bad.Names()), len(c.BadFrames)-1; got != want {
			t.Errorf("%s: bad_frames.safetensors holds %d frames, cases.json lists %d besides the empty one", name, got, want)
		}
	}
}

// fixtureData reads a fixture module's tensors as ModuleData.
func fixtureData(t *testing.T, name string) *ModuleData {
	t.Helper()
	f := testutil.Ref(t, "vq", name, "alignedvq.safetensors")
	c := readCases(t, name)
	dlp := func(side string) *DLPData {
		return &DLPData{
			Weight: testutil.F32(t, f, side+".weight"),
			Bias:   testutil.F32(t, f, side+".bias"),
			Gamma:  testutil.F32(t, f, side+".gamma")[0],
		}
	}
	return &ModuleData{
		Block: c.Block, Site: c.Site, K: c.K, D: c.D,
		Codebook: testutil.F32(t, f, "codebook"),
		DLPIn:    dlp("dlp_in"), DLPOut: dlp("dlp_out"),
		Scale: testutil.F32(t, f, "residual.scale"), Shift: testutil.F32(t, f, "residual.shift"),
	}
}

func TestForeignFramesRefused(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	m0, m1 := loadFixture(t, b, "block0_ln1"), loadFixture(t, b, "block1_ln2")
	ref := testutil.Ref(t, "ref", "vq", "block0_ln1", "vq.safetensors")
	frame := testutil.Tensor(t, ref, "square_336.frame").Bytes()
	indices := testutil.Tensor(t, ref, "square_336.indices").I32()

	// Same K, another codebook: only the fingerprint tells them apart.
	md := fixtureData(t, "block0_ln1")
	md.Codebook[7] += 1e-3
	other, err := NewModule(md, b)
	if err != nil {
		t.Fatal(err)
	}
	if other.Fingerprint == m0.Fingerprint {
		t.Fatal("changing one codebook value kept the fingerprint")
	}
	_, err = other.DecodeFrame(frame, 577)
	checkKind(t, "frame of another codebook", err, ErrFingerprint)
	_, err = m1.DecodeFrame(frame, 577)
	checkKind(t, "frame for K=256 into a K=300 module", err, ErrCodebookSize)
	_, err = m0.DecodeFrame(frame, 576)
	checkKind(t, "frame of 577 tokens for a 576-token model", err, ErrTokenCount)

	// Token statistics: carried for ln sites, refused for attn and ffn.
	stats := make([]uint16, 2*len(indices))
	for i := range stats {
		stats[i] = tensor.F32ToF16(float32(i%7) + 0.5)
	}
	withStats, err := m0.EncodeFrame(indices, stats)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(frame) + 4*len(indices); len(withStats) != want {
		t.Errorf("frame with statistics has %d bytes, want %d", len(withStats), want)
	}
	f, err := m0.DecodeFrame(withStats, 577)
	if err != nil || f.Flags != FlagTokenStats || !reflect.DeepEqual(f.Stats, stats) || !equalI32(f.Indices, indices) {
		t.Errorf("frame with statistics does not round-trip: %v", err)
	}
	for _, site := range []string{"attn", "ffn"} {
		md := fixtureData(t, "block0_ln1")
		md.Site, md.Scale, md.Shift = site, nil, nil
		ms, err := NewModule(md, b)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ms.EncodeFrame(indices, stats)
		checkKind(t, "encoding statistics for site "+site, err, ErrFlags)
		_, err = ms.DecodeFrame(withStats, 577)
		checkKind(t, "statistics frame for site "+site, err, ErrFlags)
		if _, err := ms.DecodeFrame(frame, 577); err != nil {
			t.Errorf("site %s: plain frame refused: %v", site, err)
		}
	}
}

// packBits is the spec's bit order written out literally: index t occupies
// stream bits [t·b, (t+1)·b), LSB first, and stream bit j is bit j mod 8 of
// payload byte ⌊j/8⌋.
func packBits(idx []int32, b int) []byte {
	p := make([]byte, (len(idx)*b+7)/8)
	for t, v := range idx {
		for k := range b {
			if uint32(v)>>k&1 == 1 {
				j := t*b + k
				p[j/8] |= 1 << (j % 8)
			}
		}
	}
	return p
}

func TestFrameRoundTrip(t *testing.T) {
	ks := []int{1, 2, 3, 4, 5, 7, 9, 255, 256, 257, 300, 4095, 4096, 4097, 65537, 1<<20 + 3, MaxK - 1, MaxK}
	for b := 1; b <= 31; b++ {
		ks = append(ks, 1<<b, 1<<(b-1)+1)
	}
	ns := []int{0, 1, 2, 3, 5, 7, 8, 9, 63, 64, 577}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range ks {
		bits := BitsFor(k)
		if k > 1 && (1<<bits < k || 1<<(bits-1) >= k) || k == 1 && bits != 1 {
			t.Fatalf("BitsFor(%d) = %d", k, bits)
		}
		for _, n := range ns {
			for _, withStats := range []bool{false, true} {
				f := &Frame{Bits: bits, K: k, N: n, Indices: make([]int32, n)}
				binary.LittleEndian.PutUint64(f.Fingerprint[:], rng.Uint64())
				for i := range f.Indices {
					f.Indices[i] = int32(rng.IntN(k))
				}
				if n > 1 {
					f.Indices[0], f.Indices[n-1] = int32(k-1), 0
				}
				if withStats {
					f.Flags = FlagTokenStats
					f.Stats = make([]uint16, 2*n)
					for i := range f.Stats {
						f.Stats[i] = tensor.F32ToF16(float32(i%5)*0.25 + 0.125)
					}
				}
				enc, err := f.Encode()
				if err != nil {
					t.Fatalf("K %d N %d: %v", k, n, err)
				}
				p := (n*bits + 7) / 8
				size := 28 + p
				if withStats {
					size += 4 * n
				}
				if len(enc) != size {
					t.Fatalf("K %d N %d stats %v: %d bytes, want %d", k, n, withStats, len(enc), size)
				}
				if !bytes.Equal(enc[24:24+p], packBits(f.Indices, bits)) {
					t.Fatalf("K %d N %d: payload differs from the spec's bit order", k, n)
				}
				got, err := ParseFrame(enc)
				if err != nil {
					t.Fatalf("K %d N %d stats %v: %v", k, n, withStats, err)
				}
				if got.K != k || got.N != n || got.Bits != bits || got.Flags != f.Flags ||
					got.Fingerprint != f.Fingerprint || !equalI32(got.Indices, f.Indices) ||
					!reflect.DeepEqual(got.Stats, f.Stats) {
					t.Fatalf("K %d N %d stats %v: round trip changed the frame", k, n, withStats)
				}
			}
		}
	}
}

// TestFrameSpecExample checks the spec's worked example: K = 4096, N = 577
// gives b = 12, P = 866 and an 894-byte frame.
func TestFrameSpecExample(t *testing.T) {
	f := &Frame{Bits: 12, K: 4096, N: 577, Indices: make([]int32, 577)}
	enc, err := f.Encode()
	if err != nil || len(enc) != 894 || BitsFor(4096) != 12 {
		t.Fatalf("%d bytes (%v), want 894", len(enc), err)
	}
}

// withCRC rewrites a frame's trailing CRC-32C after an edit.
func withCRC(frame []byte) []byte {
	end := len(frame) - 4
	binary.LittleEndian.PutUint32(frame[end:], crc32.Checksum(frame[:end], crc32.MakeTable(crc32.Castagnoli)))
	return frame
}

func TestFrameMalformed(t *testing.T) {
	// K = 300, N = 3: b = 9, 27 payload bits in 4 bytes, 5 bits of padding.
	good, err := (&Frame{Bits: 9, K: 300, N: 3, Indices: []int32{299, 0, 17}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name  string
		frame []byte
		kind  error
	}{
		{"padding bit set", edit(func(b []byte) []byte { b[24+3] |= 0x80; return withCRC(b) }), ErrPadding},
		{"K = 0", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 0); return withCRC(b) }), ErrCodebookSize},
		{"K > MaxK", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], MaxK+1); b[5] = 32; return withCRC(b) }), ErrCodebookSize},
		{"b = 0", edit(func(b []byte) []byte { b[5] = 0; return withCRC(b) }), ErrBits},
		{"N = 2^32-1", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 1<<32-1); return withCRC(b) }), ErrLength},
		{"index 0 → 511", edit(func(b []byte) []byte { b[25] |= 0xfe; b[26] |= 0x03; return withCRC(b) }), ErrIndex},
		{"27 bytes", good[:27], ErrFrameTooShort},
		{"stats flag without stats", edit(func(b []byte) []byte { b[6] = 1; return withCRC(b) }), ErrFlags},
		{"stats without the flag", withCRC(append(bytes.Clone(good), make([]byte, 12)...)), ErrFlags},
		{"stats flag, one byte short", edit(func(b []byte) []byte { b[6] = 1; return withCRC(append(b, make([]byte, 11)...)) }), ErrLength},
		{"flag bit 15", edit(func(b []byte) []byte { b[7] = 0x80; return withCRC(b) }), ErrFlags},
		{"CRC byte flipped", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCRC},
	}
	for _, c := range cases {
		_, err := ParseFrame(c.frame)
		checkKind(t, c.name, err, c.kind)
	}

	stats := func(mu, sigma float32) []byte {
		f := &Frame{Bits: 9, K: 300, N: 1, Flags: FlagTokenStats, Indices: []int32{5}, Stats: []uint16{tensor.F32ToF16(1), tensor.F32ToF16(1)}}
		b, err := f.Encode()
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint16(b[26:], tensor.F32ToF16(mu))
		binary.LittleEndian.PutUint16(b[28:], tensor.F32ToF16(sigma))
		return withCRC(b)
	}
	if _, err := ParseFrame(stats(-3, 0.5)); err != nil {
		t.Errorf("valid statistics refused: %v", err)
	}
	for _, bad := range [][2]float32{{1, 0}, {1, -1}, {float32(inf()), 1}, {1, float32(inf())}, {1, float32(nan())}} {
		_, err := ParseFrame(stats(bad[0], bad[1]))
		checkKind(t, "statistics μ, σ = "+fmtF(bad[0])+", "+fmtF(bad[1]), err, ErrStats)
	}
}

func TestFrameEncodeRefuses(t *testing.T) {
	ok := func() *Frame { return &Frame{Bits: 9, K: 300, N: 2, Indices: []int32{1, 2}} }
	cases := []struct {
		name string
		edit func(f *Frame)
		kind error
	}{
		{"wrong bits", func(f *Frame) { f.Bits = 10 }, ErrBits},
		{"K = 0", func(f *Frame) { f.K = 0 }, ErrCodebookSize},
		{"K > MaxK", func(f *Frame) { f.K, f.Bits = MaxK+1, 32 }, ErrCodebookSize},
		{"N disagrees", func(f *Frame) { f.N = 3 }, ErrTokenCount},
		{"index = K", func(f *Frame) { f.Indices[1] = 300 }, ErrIndex},
		{"negative index", func(f *Frame) { f.Indices[0] = -1 }, ErrIndex},
		{"unknown flag", func(f *Frame) { f.Flags = 2 }, ErrFlags},
		{"stats without flag", func(f *Frame) { f.Stats = make([]uint16, 4) }, ErrStats},
		{"flag with 3 stats", func(f *Frame) { f.Flags, f.Stats = FlagTokenStats, make([]uint16, 3) }, ErrStats},
		{"σ = 0", func(f *Frame) { f.Flags, f.Stats = FlagTokenStats, make([]uint16, 4) }, ErrStats},
	}
	for _, c := range cases {
		f := ok()
		c.edit(f)
		_, err := f.Encode()
		checkKind(t, c.name, err, c.kind)
	}
}

// TestParseFrameAllocationBounded feeds a 28-byte frame that claims 2³²−1
// tokens: the length check must refuse it before any allocation of N.
func TestParseFrameAllocationBounded(t *testing.T) {
	f, err := (&Frame{Bits: 1, K: 2}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(f[12:], 1<<32-1)
	f = withCRC(f)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = ParseFrame(f)
	runtime.ReadMemStats(&after)
	checkKind(t, "N = 2^32-1 in 28 bytes", err, ErrLength)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<16 {
		t.Errorf("refusing the frame allocated %d bytes", grew)
	}
}

func inf() float64          { return math.Inf(1) }
func nan() float64          { return math.NaN() }
func fmtF(x float32) string { return strconv.FormatFloat(float64(x), 'g', -1, 32) }
