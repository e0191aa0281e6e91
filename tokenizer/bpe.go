package tokenizer

// BPE segmentation as sentencepiece's bpe::Model::SampleEncode does it with
// alpha = 0 (google/sentencepiece, src/bpe_model.cc): start from characters
// (user-defined pieces are single frozen symbols), keep every adjacent pair
// whose concatenation is a vocabulary piece in a max-heap keyed by the piece's
// score (ties: leftmost pair first), merge the best pair, push the two pairs
// the merge creates, and drop stale heap entries when popped. Symbols form a
// doubly linked list over the normalised text, so a merge is O(log n) and the
// whole encode O(n log n).

type bpeSymbol struct {
	start, end int32 // byte range in the normalised text; start == end once merged away
	prev, next int32 // neighbours in the list, -1 at the ends
	freeze     bool  // user-defined piece: never merged
}

type bpePair struct {
	score       float32
	left, right int32
	size        int32 // byte length of the merged piece when it was pushed
}

// pairHeap is a binary max-heap ordered as sentencepiece's
// SymbolPairComparator: higher score first, then smaller left index.
type pairHeap []bpePair

func (h pairHeap) before(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return h[i].left < h[j].left
}

func (h *pairHeap) push(p bpePair) {
	*h = append(*h, p)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !s.before(i, parent) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *pairHeap) pop() bpePair {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, best := 2*i+1, 2*i+2, i
		if l < len(s) && s.before(l, best) {
			best = l
		}
		if r < len(s) && s.before(r, best) {
			best = r
		}
		if best == i {
			break
		}
		s[i], s[best] = s[best], s[i]
		i = best
	}
	*h = s
	return top
}

// bpe segments the normalised text and calls emit for every resulting piece
// with its id (unk for a symbol that is not in the vocabulary).
func (sp *sentencePiece) bpe(text string, emit func(piece string, id int32)) {
	if text == "" {
		return
	}
	syms := make([]bpeSymbol, 0, len(text))
	for pos := 0; pos < len(text); {
		n, freeze := 0, false
		if sp.userDefined != nil {
			n = sp.matchUserDefined(text[pos:])
			freeze = n > 0
		}
		if n == 0 {
			n = min(oneCharLen(text[pos]), len(text)-pos)
		}
		i := int32(len(syms))
		syms = append(syms, bpeSymbol{start: int32(pos), end: int32(pos + n), prev: i - 1, next: i + 1, freeze: freeze})
		pos += n
	}
	syms[len(syms)-1].next = -1

	// revMerge records how an UNUSED piece was built, so the final pass can
	// split it back into pieces that may be emitted (sentencepiece's rev_merge).
	var revMerge map[string][2]string
	agenda := make(pairHeap, 0, len(syms))
	maybeAdd := func(left, right int32) {
		if left < 0 || right < 0 || syms[left].freeze || syms[right].freeze {
			return
		}
		piece := text[syms[left].start:syms[right].end]
		id, ok := sp.normal[piece]
		if !ok {
			return
		}
		agenda.push(bpePair{score: sp.pieces[id].score, left: left, right: right, size: int32(len(piece))})
		if sp.pieces[id].typ == pieceUnused {
			if revMerge == nil {
				revMerge = make(map[string][2]string)
			}
			revMerge[piece] = [2]string{text[syms[left].start:syms[left].end], text[syms[right].start:syms[right].end]}
		}
	}
	for i := 1; i < len(syms); i++ {
		maybeAdd(int32(i-1), int32(i))
	}
	for len(agenda) > 0 {
		top := agenda.pop()
		l, r := &syms[top.left], &syms[top.right]
		if l.start == l.end || r.start == r.end || (l.end-l.start)+(r.end-r.start) != top.size {
			continue // stale: one side was merged since this pair was pushed
		}
		l.end = r.end
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = top.left
		}
		r.start = r.end
		maybeAdd(l.prev, top.left)
		maybeAdd(top.left, l.next)
	}

	var resegment func(w string)
	resegment = func(w string) {
		id := sp.pieceToID(w)
		if sp.pieces[id].typ == pieceUnused {
			if parts, ok := revMerge[w]; ok {
				resegment(parts[0])
				resegment(parts[1])
				return
			}
		}
		emit(w, id)
	}
	for i := int32(0); i != -1; i = syms[i].next {
		resegment(text[syms[i].start:syms[i].end])
	}
}
