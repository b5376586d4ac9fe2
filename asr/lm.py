"""Building n-gram language models for the beam search.

`build_lm` estimates a modified Kneser-Ney ARPA model from text with KenLM's own estimator,
`lmplz` (built from the `kenlm` source package on PyPI by scripts/install-kenlm-tools.sh):
the text is normalised exactly as training transcripts are (`asr.text.normalize`), one
sentence a line. `convert_pocketsphinx` turns pocketsphinx's packed trigram model (the
72k-word English `en-us.lm.bin` its wheel ships) into an ARPA file: it reads the packed trie
itself, because pocketsphinx 5.1.1's own ARPA writer crashes on that model (its header
declares more bigrams than its trie holds) and stores log-probs in base 1.0001.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from .text import normalize

SPECIALS = ("<s>", "</s>", "<unk>")
_SPELLABLE = re.compile(r"^[a-z']+$")  # words our character vocabulary can spell


class LMBuildError(Exception):
    """Building or converting a language model failed; str() is one line."""


# --------------------------------------------------------------------------- text
def _open_text(path: str) -> io.TextIOBase:
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    opener = gzip.open if path.endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8", errors="replace", newline="")


def read_sentences(path: str) -> Iterator[str]:
    """Raw sentences of a text file (one a line; .gz read as gzip; '-' is stdin), or the
    `text` field of a manifest (.tsv with a header naming `text`, or .jsonl)."""
    name = path[:-3] if path.endswith(".gz") else path
    with _open_text(path) as f:
        if name.endswith(".jsonl"):
            for line in f:
                if line.strip():
                    yield str(json.loads(line).get("text", ""))
            return
        if name.endswith(".tsv"):
            header = f.readline().rstrip("\r\n").split("\t")
            if "text" in header:
                for row in csv.DictReader(f, fieldnames=header, delimiter="\t", quoting=csv.QUOTE_NONE):
                    yield row.get("text") or ""
                return
            yield "\t".join(header)
        yield from (line.rstrip("\r\n") for line in f)


def normalized_sentences(paths: Iterable[str], exclude: set[str] = frozenset(),
                         stats: dict | None = None) -> Iterator[str]:
    """Normalised, non-empty sentences of the given files, leaving out any in `exclude`
    (normalised sentences, e.g. a dev set's transcripts, which must never reach an LM)."""
    stats = stats if stats is not None else {}
    for key in ("sentences", "words", "excluded"):
        stats.setdefault(key, 0)
    for path in paths:
        for raw in read_sentences(path):
            text = normalize(raw)
            if not text:
                continue
            if text in exclude:
                stats["excluded"] += 1
                continue
            stats["sentences"] += 1
            stats["words"] += text.count(" ") + 1
            yield text


def manifest_texts(paths: Iterable[str]) -> set[str]:
    """Normalised sentences of manifests or text files (for --exclude)."""
    return {t for p in paths for t in (normalize(s) for s in read_sentences(p)) if t}


# --------------------------------------------------------------------------- KenLM tools
def kenlm_tool(name: str) -> str | None:
    """Path of a KenLM program (lmplz, build_binary): on PATH, or beside this Python (a
    virtual environment's bin/, where scripts/install-kenlm-tools.sh puts them)."""
    found = shutil.which(name)
    if found:
        return found
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() and os.access(local, os.X_OK) else None


def install_tools_command() -> str | None:
    """The command that builds lmplz and build_binary into this Python's environment, from a
    checkout of asr (None for an installed package without its scripts/)."""
    repo = Path(__file__).resolve().parent.parent
    script = repo / "scripts" / "install-kenlm-tools.sh"
    if not script.is_file():
        return None
    shown = os.path.relpath(script) if Path.cwd() == repo else str(script)
    venv = Path(sys.prefix)
    return f"bash {shown}" + ("" if venv == repo / ".venv" else f" {venv}")


def _require(name: str) -> str:
    tool = kenlm_tool(name)
    if tool is None:
        command = install_tools_command()
        how = (f"build it once with `{command}` (a few minutes; it installs cmake and Boost with apt-get "
               "where missing)" if command else
               "build it from the kenlm source package on PyPI and put it on PATH (docs/lm.md)")
        raise LMBuildError(f"{name} (KenLM's {'estimator' if name == 'lmplz' else 'binary converter'}) is not "
                           f"installed: {how}")
    return tool


def build_lm(texts: list[str], output: str | os.PathLike, order: int = 3, exclude: set[str] = frozenset(),
             memory: str = "1G", prune: list[int] | None = None,
             on_sentence: Callable[[int], None] | None = None) -> dict:
    """Estimate a modified Kneser-Ney model of the given order from text files (or manifests)
    with lmplz, and write it to `output`: ARPA, or a KenLM binary when output ends in .bin or
    .binary (with the words listed in OUTPUT.vocab for the beam search's word trie).

    prune: lmplz's count thresholds per order (e.g. [0, 0, 1] drops singleton trigrams).
    Returns statistics: sentences, words, excluded, ngrams per order, output, bytes.
    """
    if order < 2 or order > 6:
        raise LMBuildError(f"--order must be between 2 and 6 (got {order})")
    for path in texts:
        if path != "-" and not os.path.isfile(path):
            raise LMBuildError(f"{path}: no such text file")
    lmplz = _require("lmplz")
    output = Path(output)
    binary = output.suffix in (".bin", ".binary")
    if binary:
        _require("build_binary")
    output.parent.mkdir(parents=True, exist_ok=True)
    stats: dict = {}
    with tempfile.TemporaryDirectory(prefix="asr-lm-", dir=output.parent) as tmp:
        arpa = Path(tmp) / "model.arpa" if binary else output.with_name(output.name + ".tmp")
        cmd = [lmplz, "-o", str(order), "--discount_fallback", "-S", memory, "-T", tmp, "--arpa", str(arpa)]
        if prune:
            cmd += ["--prune", *map(str, prune)]
        with tempfile.TemporaryFile(dir=tmp) as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=log)
            try:
                for text in normalized_sentences(texts, exclude, stats):
                    proc.stdin.write(text.encode() + b"\n")
                    if on_sentence:
                        on_sentence(stats["sentences"])
            except BrokenPipeError:
                pass
            except BaseException:
                proc.kill()
                proc.wait()
                arpa.unlink(missing_ok=True)
                raise
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            code = proc.wait()
            log.seek(0)
            message = log.read().decode(errors="replace")
        if stats.get("words", 0) == 0:
            arpa.unlink(missing_ok=True)
            raise LMBuildError("no text: every input was empty after normalisation")
        if code != 0:
            arpa.unlink(missing_ok=True)
            raise LMBuildError(f"lmplz failed: {_last_error(message)}")
        stats["ngrams"] = arpa_counts(arpa)
        if binary:
            to_binary(arpa, output, memory)
        else:
            os.replace(arpa, output)
    stats.update(output=str(output), bytes=output.stat().st_size)
    return stats


def to_binary(arpa: str | os.PathLike, output: str | os.PathLike, memory: str = "1G") -> None:
    """ARPA (or .arpa.gz) -> KenLM binary (trie) with KenLM's build_binary, and the model's
    words in OUTPUT.vocab (a binary does not list them; the beam search needs them)."""
    build_binary = _require("build_binary")
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="asr-lm-", dir=output.parent) as tmp:
        partial = Path(tmp) / "model.bin"
        result = subprocess.run([build_binary, "-S", memory, "-T", tmp, "trie", str(arpa), str(partial)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise LMBuildError(f"{arpa}: build_binary failed: {_last_error(result.stderr)}")
        write_vocab(arpa, Path(tmp) / "model.vocab")
        os.replace(partial, output)
        os.replace(Path(tmp) / "model.vocab", output.with_name(output.name + ".vocab"))


def _last_error(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and not set(ln.strip()) <= set("*-0123456789 ")]
    for line in reversed(lines):
        if "rror" in line or "xception" in line or "not" in line:
            return line
    return lines[-1] if lines else "no message"


def arpa_counts(path: str | os.PathLike) -> list[int]:
    """The `ngram N=COUNT` lines of an ARPA file's header, as a list of counts."""
    counts = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"ngram (\d+)=(\d+)", line.strip())
            if m:
                counts.append(int(m.group(2)))
            elif counts and line.startswith("\\1-grams:"):
                break
    return counts


def arpa_unigrams(path: str | os.PathLike) -> list[str] | None:
    """The 1-gram words of an ARPA file (gzipped or not); None for a file that is not ARPA
    (a KenLM binary)."""
    with open(path, "rb") as f:
        zipped = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if zipped else open
    with opener(path, "rb") as f:
        if f.read(4096).lstrip()[:6] != b"\\data\\":
            return None
    words, inside = [], False
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and line.startswith("\\"):
                break
            elif inside and line:
                parts = line.split()
                if len(parts) >= 2:
                    words.append(parts[1])
    return words


def write_vocab(arpa: str | os.PathLike, path: str | os.PathLike) -> None:
    """The 1-gram words of an ARPA file, one a line (the word list for a KenLM binary)."""
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(w + "\n" for w in arpa_unigrams(arpa) or [])


# --------------------------------------------------------------------------- pocketsphinx
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
