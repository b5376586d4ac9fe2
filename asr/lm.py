"""Building n-gram language models for the beam search.

`build_lm` estimates a modified Kneser-Ney ARPA model from text with KenLM's own estimator,
`lmplz` (built from the `kenlm` source package on PyPI by scripts/install-kenlm-tools.sh):
the text is normalised exactly as training transcripts are (`asr.text.normalize`), one
sentence a line. pocketsphinx's English model is converted by pocketsphinx_lm.py.

Loading a model for the beam search (`load_language_model`: ARPA or KenLM binary, through
KenLM's queries, wrapped for pyctcdecode) is here too; beam.py searches with it.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

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


# --------------------------------------------------------------------------- loading, for the beam search
class LMError(Exception):
    """A language model file that is missing or unusable; str() is one line "PATH: reason"."""


def _kenlm_reason(message: str) -> str:
    """KenLM's long C++ exception text -> its human part, on one line."""
    m = re.search(r"threw \w+\.?\s*(?:because `[^']*'\.?\s*)?(.*?)\)?$", message, re.S) \
        or re.search(r"^Cannot read model '.*?' \((.*)\)$", message, re.S)
    reason = (m.group(1) if m else message).strip()
    reason = re.sub(r"(at byte (\d+))\s*Byte: \2", r"\1", reason)
    reason = re.sub(r"\.?\s*Byte: (\d+)\.?$", r" (at byte \1)", reason)
    reason = "".join(c if c.isprintable() else " " for c in reason)
    reason = " ".join(reason.split()) or "unreadable"
    return reason if len(reason) <= 200 else reason[:197] + "..."


def _read_unigrams(path: str) -> list[str] | None:
    """The 1-gram words of an ARPA file (gzipped or not), or of a `PATH.vocab` file (one word
    a line) beside a KenLM binary; None when there are neither."""
    vocab = path + ".vocab"
    if os.path.exists(vocab):
        with open(vocab, encoding="utf-8", errors="replace") as f:
            return [w for w in (line.strip() for line in f) if w]
    return arpa_unigrams(path)


def _make_language_model(kenlm_model, unigrams: list[str] | None, alpha: float, beta: float):
    """pyctcdecode's LanguageModel over a KenLM model, with two changes: an upper-case LM
    (such as LibriSpeech's) is queried in upper case, since our transcripts are lower case;
    and it can start from a given context (`state_after`)."""
    import kenlm
    from pyctcdecode.constants import LOG_BASE_CHANGE_FACTOR
    from pyctcdecode.language_model import LanguageModel

    specials = {"<s>", "</s>", "<unk>", "<UNK>"}
    words = [w for w in unigrams or [] if w not in specials]
    upper = bool(words) and sum(w.isupper() for w in words) > 0.5 * len(words)
    lm_case = str.upper if upper else str

    class CasedLanguageModel(LanguageModel):
        def score(self, prev_state, word, is_last_word=False):
            if not word:  # a hypothesis ending in a space: no word to score (pyctcdecode scores <unk>)
                end = self._get_raw_end_score(prev_state) if is_last_word else 0.0
                return self.alpha * end * LOG_BASE_CHANGE_FACTOR, prev_state
            state = kenlm.State()
            lm_word = lm_case(word)
            score = self._kenlm_model.BaseScore(prev_state, lm_word, state)
            if (self._unigram_set and word not in self._unigram_set) or lm_word not in self._kenlm_model:
                score += self.unk_score_offset
            if is_last_word:
                score += self._get_raw_end_score(state)
            return self.alpha * score * LOG_BASE_CHANGE_FACTOR + self.beta, state

        def state_after(self, context: list[str]):
            """The KenLM state after <s> and these words (only the last order-1 matter)."""
            state = self.get_start_state()
            for w in context[-(self.order - 1):] if self.order > 1 else []:
                out = kenlm.State()
                self._kenlm_model.BaseScore(state, lm_case(w), out)
                state = out
            return state

    lm = CasedLanguageModel(kenlm_model, None, alpha=alpha, beta=beta)
    known = {w.lower() for w in words if w in kenlm_model}
    lm._unigram_set = known  # what pyctcdecode's constructor would set from lower-case words
    lm._char_trie = _Prefixes(known) if known else None
    return lm


class _Prefixes:
    """What pyctcdecode's LanguageModel asks of its pygtrie.CharTrie of the known words: whether a
    partial word is a prefix of one (`has_node(p) == 0`: it is not). A set of every prefix
    answers the same and is built in a blink, where the trie of a 26 000-word LM took about a
    second, most of a short file's `asr transcribe`."""

    def __init__(self, words):
        self._prefixes = {w[:i] for w in words for i in range(len(w) + 1)}

    def has_node(self, prefix: str) -> int:
        return 2 if prefix in self._prefixes else 0  # pygtrie: 2 = a node with children (a prefix); 0 = none


def load_language_model(path: str | os.PathLike, alpha: float, beta: float):
    """Load an ARPA or KenLM binary model for the beam search, weighted by alpha (LM weight) and
    beta (word bonus): pyctcdecode's LanguageModel. Raises LMError (one line)."""
    import kenlm

    path = os.fspath(path)
    if not os.path.exists(path):
        raise LMError(f"{path}: no such language model file")
    if os.path.isdir(path):
        raise LMError(f"{path}: is a folder, not a language model file")
    if os.path.getsize(path) == 0:
        raise LMError(f"{path}: empty file, not a language model")
    with open(path, "rb") as f:
        head = f.read(32)
    if head.startswith(b"Trie Language Model"):
        raise LMError(f"{path}: a pocketsphinx model; convert it with `asr lm convert-pocketsphinx {path} -o LM.arpa`")
    config = kenlm.Config()
    config.show_progress = False
    config.arpa_complain = kenlm.ARPALoadComplain.NONE
    try:
        with _quiet_stderr():
            model = kenlm.Model(path, config)
    except (OSError, RuntimeError, ValueError) as err:
        raise LMError(f"{path}: not a usable ARPA or KenLM binary language model: {_kenlm_reason(str(err))}") from None
    try:
        unigrams = _read_unigrams(path)
    except OSError as err:
        raise LMError(f"{path}: {err.strerror or err}") from None
    return _make_language_model(model, unigrams, alpha, beta)


class _quiet_stderr:
    """Silence file descriptor 2 (KenLM prints loading notes from C++)."""

    def __enter__(self):
        import sys
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        return False
