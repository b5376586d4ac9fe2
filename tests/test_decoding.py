"""Greedy CTC decoding: repeats merged, blanks dropped, word times from frames, incremental = whole."""
import torch

from asr.decoding import GreedyDecoder, segments_from_words, Word
from asr.text import VOCAB


def frames_for(path):
    """A log-prob matrix whose argmax follows `path` (one symbol per frame, '_' = blank)."""
    ids = [0 if c == "_" else VOCAB.index(c) for c in path]
    lp = torch.full((len(ids), len(VOCAB)), -10.0)
    lp[torch.arange(len(ids)), ids] = -0.01
    return lp


def test_repeats_merge_blanks_split_and_times():
    dec = GreedyDecoder(frame_seconds=0.04)
    dec.update(frames_for("__hhe_ll_lo___ _wwo__rld__"))
    assert dec.partial() == "hello world"
    words = dec.finalize()
    assert [w.word for w in words] == ["hello", "world"]
    assert abs(words[0].start - 0.08) < 1e-9 and abs(words[0].end - 0.44) < 1e-9  # frames 2..10
    assert abs(words[1].start - 0.64) < 1e-9 and abs(words[1].end - 0.96) < 1e-9  # frames 16..23
    assert all(0.9 < w.conf <= 1.0 for w in words)


def test_incremental_updates_equal_one_update():
    path = "_aa_b__ c_cc  d__"
    whole = GreedyDecoder(0.04)
    whole.update(frames_for(path))
    inc = GreedyDecoder(0.04)
    for i in range(len(path)):  # one frame at a time, across repeats
        inc.update(frames_for(path[i]))
    assert whole.finalize() == inc.finalize()


def test_segments_break_at_pauses_and_length():
    words = [Word("a", 0.0, 0.2), Word("b", 0.3, 0.5), Word("c", 2.0, 2.2), Word("d", 2.3, 2.4)]
    segs = segments_from_words(words, max_gap=0.8)
    assert [s.text for s in segs] == ["a b", "c d"]
    assert segs[1].start == 2.0 and segs[1].end == 2.4
    many = [Word("word", i * 0.3, i * 0.3 + 0.2) for i in range(40)]
    assert all(len(s.text) <= 84 and s.end - s.start <= 8.0 for s in segments_from_words(many))
