"""pocketsphinx's English trigram model as an ARPA file, for `asr lm convert-pocketsphinx`.

`convert_pocketsphinx` turns pocketsphinx's packed trigram model (the 72k-word English
`en-us.lm.bin` its wheel ships) into an ARPA file: it reads the packed trie itself, because
pocketsphinx 5.1.1's own ARPA writer crashes on that model (its header declares more bigrams
than its trie holds) and stores log-probs in base 1.0001.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .lm import LMBuildError, SPECIALS, _SPELLABLE, _require, to_binary


def pocketsphinx_default_lm() -> str:
    """The English trigram model that the pocketsphinx wheel ships."""
    try:
        import pocketsphinx
    except ImportError:
        raise LMBuildError("pocketsphinx is not installed (pip install pocketsphinx)") from None
    return os.path.join(pocketsphinx.get_model_path(), "en-us", "en-us.lm.bin")


def _bits(max_value: int) -> int:
    """Bits to store integers up to max_value (pocketsphinx's bitarr_required_bits)."""
    return int(max_value).bit_length()


def _read_field(mem: np.ndarray, bit_offsets: np.ndarray, width: int) -> np.ndarray:
    """Little-endian bit fields of `width` bits starting at each bit offset of mem (uint8)."""
    byte = bit_offsets >> 3
    value = np.zeros(len(bit_offsets), np.uint64)
    for k in range(8):  # 8 bytes cover any field of up to 57 bits
        value |= mem[byte + k].astype(np.uint64) << np.uint64(8 * k)
    value >>= (bit_offsets & 7).astype(np.uint64)
    return (value & np.uint64((1 << width) - 1)).astype(np.int64)


def read_pocketsphinx_trie(path: str | os.PathLike) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]]:
    """A pocketsphinx "Trie Language Model" file -> (words, [(ngrams (N, n) word ids in ARPA
    order, log10 probs (N,), log10 backoffs (N,) or None for the highest order)] per order).

    The layout (pocketsphinx src/lm/lm_trie.c, a port of KenLM's trie): header, order,
    counts; 16-bit quantisation tables; unigrams (prob, backoff, first child); then per order
    a bit-packed array of (word, quantised prob and backoff, first child) sorted under each
    parent. A path in the trie is an n-gram read backwards (predicted word first). Values
    are natural logs in base 1.0001.
    """
    header = b"Trie Language Model"
    data = np.fromfile(path, dtype=np.uint8)
    if data[: len(header)].tobytes() != header:
        raise LMBuildError(f"{path}: not a pocketsphinx trie language model")
    pos = len(header)
    order = int(data[pos])
    pos += 1
    counts = [int(c) for c in data[pos: pos + 4 * order].view("<u4")]
    pos += 4 * order
    if order < 2:
        raise LMBuildError(f"{path}: a unigram model cannot be used (KenLM needs at least bigrams)")
    pos += 4  # a former quantisation-type field
    tables = data[pos: pos + 4 * (65536 * (2 * (order - 2) + 1))].view("<f4")
    pos += tables.nbytes
    prob_tables = [tables[2 * 65536 * i: 2 * 65536 * i + 65536] for i in range(order - 2)] + [tables[-65536:]]
    bo_tables = [tables[2 * 65536 * i + 65536: 2 * 65536 * (i + 1)] for i in range(order - 2)]
    unigrams = data[pos: pos + 12 * (counts[0] + 1)].view(np.dtype([("prob", "<f4"), ("bo", "<f4"), ("next", "<u4")]))
    pos += unigrams.nbytes
    to_log10 = math.log10(1.0001)
    word_bits = _bits(counts[0])
    sizes, layouts = [], []
    for i in range(1, order):
        longest = i == order - 1
        next_bits = 0 if longest else _bits(counts[i + 1])
        total = word_bits + (16 if longest else 32) + next_bits
        layouts.append((total, next_bits))
        sizes.append(((1 + counts[i]) * total + 7) // 8 + 8)
    mem_end = pos + sum(sizes)
    if len(data) < mem_end + 4:
        raise LMBuildError(f"{path}: truncated trie language model")
    n_chars = int(data[mem_end: mem_end + 4].view("<i4")[0])
    words = data[mem_end + 4: mem_end + 4 + n_chars].tobytes().decode("utf-8", "replace").split("\0")[: counts[0]]

    result = [(np.arange(counts[0])[:, None], unigrams["prob"][:-1] * to_log10,
               unigrams["bo"][:-1] * to_log10)]
    # Walk the trie level by level. `paths` are the previous level's trie paths (predicted
    # word first); the children of path k are entries bounds[k] .. bounds[k + 1] - 1 of the
    # next level (entries are stored parent by parent, so they are contiguous).
    paths = np.arange(counts[0])[:, None]
    bounds = unigrams["next"].astype(np.int64)
    offset = pos
    for i in range(1, order):
        total, next_bits = layouts[i - 1]
        mem = data[offset: offset + sizes[i - 1]]
        offset += sizes[i - 1]
        index = np.arange(bounds[0], bounds[-1])
        if bounds[-1] > counts[i] or np.any(np.diff(bounds) < 0):
            raise LMBuildError(f"{path}: inconsistent trie language model")
        paths = np.concatenate([paths[np.repeat(np.arange(len(paths)), np.diff(bounds))],
                                _read_field(mem, index * total, word_bits)[:, None]], axis=1)
        if i == order - 1:
            prob = prob_tables[-1][_read_field(mem, index * total + word_bits, 16)]
            result.append((paths[:, ::-1], prob * to_log10, None))
        else:
            quant = _read_field(mem, index * total + word_bits, 32)
            prob, bo = prob_tables[i - 1][quant >> 16], bo_tables[i - 1][quant & 0xFFFF]
            result.append((paths[:, ::-1], prob * to_log10, bo * to_log10))
            ends = np.arange(bounds[0], bounds[-1] + 1)
            bounds = _read_field(mem, ends * total + word_bits + 32, next_bits)
    return words, result


def write_arpa(words: list[str], ngrams: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
               path: str | os.PathLike, keep: Callable[[str], bool] | None = None) -> list[int]:
    """Write an ARPA file. keep(word): drop every n-gram holding a word it rejects (an n-gram
    and all its extensions go together, so the model stays consistent). Returns the counts."""
    keep_word = np.array([w in SPECIALS or keep is None or keep(w) for w in words])
    tables = []
    for ids, prob, bo in ngrams:
        mask = keep_word[ids].all(axis=1)
        tables.append((ids[mask], np.maximum(prob[mask], -99.0), None if bo is None else bo[mask]))
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n, (ids, _, _) in enumerate(tables, 1):
            f.write(f"ngram {n}={len(ids)}\n")
        for n, (ids, prob, bo) in enumerate(tables, 1):
            f.write(f"\n\\{n}-grams:\n")
            text = [" ".join(words[w] for w in row) for row in ids.tolist()]
            probs = np.char.mod("%.4f", prob)
            if bo is None:
                f.writelines(f"{p}\t{t}\n" for p, t in zip(probs.tolist(), text))
            else:
                bos = np.char.mod("%.4f", bo)
                f.writelines(f"{p}\t{t}\t{b}\n" for p, t, b in zip(probs.tolist(), text, bos.tolist()))
        f.write("\n\\end\\\n")
    os.replace(tmp, path)
    return [len(t[0]) for t in tables]


def convert_pocketsphinx(output: str | os.PathLike, source: str | None = None, spellable_only: bool = True) -> dict:
    """pocketsphinx trie model (default: the wheel's en-us.lm.bin) -> ARPA file (log10).

    spellable_only: keep only words of a-z and apostrophes (the words this recogniser can
    write), which drops a few hundred words like "a." and makes loading faster."""
    source = source or pocketsphinx_default_lm()
    if not os.path.isfile(source):
        raise LMBuildError(f"{source}: no such file")
    words, ngrams = read_pocketsphinx_trie(source)
    keep = (lambda w: bool(_SPELLABLE.match(w))) if spellable_only else None
    output = Path(output)
    if output.suffix in (".bin", ".binary"):
        _require("build_binary")
        with tempfile.TemporaryDirectory(prefix="asr-lm-", dir=output.parent) as tmp:
            counts = write_arpa(words, ngrams, Path(tmp) / "model.arpa", keep)
            to_binary(Path(tmp) / "model.arpa", output)
    else:
        counts = write_arpa(words, ngrams, output, keep)
    return {"source": source, "output": str(output), "ngrams": counts, "bytes": output.stat().st_size}
