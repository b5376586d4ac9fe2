"""The punctuation-and-casing model (asr/punctuation.py): labelling punctuated text, the bundled
model on ONNX Runtime, long texts in windows, pauses, and the scores `asr evaluate` reports."""
import pytest

from asr.decoding import Word
from asr.punctuation import (WINDOW, Punctuator, Scores, bundled, label_words, punctuate_words, render,
                             _windows)
from asr.text import normalize


def test_label_words_reads_marks_and_case_as_the_normaliser_writes_words():
    tokens = label_words("“Why?” she asked—and then, in 1908, Mr. Smith left NASA; go!")
    assert [t.word for t in tokens] == normalize("Why she asked and then in 1908 Mr Smith left NASA go").split()
    marks = {t.word: t.mark for t in tokens}
    assert marks["why"] == "?" and marks["asked"] == "," and marks["then"] == "," and marks["eight"] == ","
    assert marks["mr"] == "" and marks["nasa"] == "," and marks["go"] == "."  # Mr. ends no sentence; ; is a comma
    cases = {t.word: t.case for t in tokens}
    assert cases["why"] == cases["mr"] == cases["smith"] == "cap" and cases["nasa"] == "upper" and cases["left"] == "lower"
    assert render(label_words("The girl faced him, her eyes shining.")) == "The girl faced him, her eyes shining."


def test_the_bundled_model_punctuates_and_capitalises():
    p = bundled()
    assert p is not None, "asr/models/punctuation.onnx is bundled"
    assert p.text("the girl faced him her eyes shining with sudden fear").startswith("The girl faced him")
    out = p.text("what do you want")
    assert out[0] == "W" and out.endswith("?")
    said = p.text("i think that i know where he lives")
    assert said.startswith("I think that I know") and said.endswith(".")
    assert normalize(said) == "i think that i know where he lives"  # words unchanged, only marks and case


def test_a_long_text_goes_in_overlapping_windows_with_context_on_both_sides():
    for n in (1, WINDOW, WINDOW + 1, 5 * WINDOW + 7):
        windows = _windows(n)
        kept = [i for _, _, lo, hi in windows for i in range(lo, hi)]
        assert kept == list(range(n))  # every word decided once
        assert all(hi - lo <= WINDOW and lo <= klo and khi <= hi for lo, hi, klo, khi in windows)
    text = " ".join(["she said that the house by the river was old and the garden was full of roses"] * 30)
    tokens = bundled()(text.split())
    assert len(tokens) == len(text.split()) and tokens[-1].mark in ".?"
    assert sum(t.mark in ".?" for t in tokens) >= 10  # sentences found all along, not only in the first window


def test_a_long_pause_gets_a_mark_and_times_stay():
    words = [Word(w, 0.3 * i + (2.0 if i >= 4 else 0.0), 0.3 * i + 0.25 + (2.0 if i >= 4 else 0.0), 0.9)
             for i, w in enumerate("thank you very much the next train leaves at noon".split())]
    out = punctuate_words(words, bundled())
    assert out[3].word.endswith((",", ".", "?"))  # the speaker stopped for 2 s after "much"
    assert out[0].word == "Thank" and out[-1].word.endswith(".")
    assert [(w.start, w.end, w.conf) for w in out] == [(w.start, w.end, w.conf) for w in words]


def test_scores_count_marks_and_case_of_the_words_both_texts_share():
    s = Scores()
    s.add(label_words("Hello, Philip. Is it you?"), label_words("Hello Philip. Is it him you?"))
    r = s.report()
    assert r["words"] == 5  # "him" is a recognition error: not scored here
    assert r["period"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert r["comma"]["recall"] == 0.0 and r["comma"]["support"] == 1 and r["question"]["f1"] == 1.0
    assert r["casing_accuracy"] == 1.0


def test_a_file_that_is_not_a_model_says_so(tmp_path):
    from asr.punctuation import PunctuationError
    bad = tmp_path / "p.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(PunctuationError, match="not a usable punctuation model"):
        Punctuator(bad)


@pytest.mark.slow  # two subprocesses that import torch: about 30 s on the 2-core machine
def test_the_recipe_prepares_trains_and_exports_a_model_the_runtime_loads(tmp_path):
    """recipes/punctuation end to end on a tiny SWORD module and Jargon File made here: the held-out
    prompt is dropped, the paragraphs split, a few training steps, and an ONNX file that
    asr.punctuation loads (numpy + onnxruntime) with its vocabulary and card."""
    import gzip
    import json
    import struct
    import subprocess
    import sys
    import zlib

    from conftest import REPO
    web = tmp_path / "web"
    web.mkdir()
    for testament, verses in (("ot", ["In the beginning, there was light.", "Where are you going?"]),
                              ("nt", ["He said, “Follow me.”", "They followed him, and they were glad."])):
        osis = "".join(f'<div type="x-p" sID="p{i}"/><w lemma="x">{v}</w><note placement="foot">a note.</note> '
                       for i, v in enumerate(verses * 40))
        block = zlib.compress(osis.encode())
        (web / f"{testament}.bzz").write_bytes(block)
        (web / f"{testament}.bzs").write_bytes(struct.pack("<III", 0, len(block), len(osis.encode())))
    jargon = tmp_path / "jargon.txt.gz"
    with gzip.open(jargon, "wt") as f:
        f.write("\n\n".join(f"   :term{i}: n.\n\n   A hacker who writes code late at night, and likes it very much. Why not?"
                            for i in range(60)))
    prompts, held = tmp_path / "prompts.tsv", tmp_path / "dev.tsv"
    prompts.write_text("id\tpath\ttext\na\tx.flac\tWill we ever forget it.\nb\ty.flac\tShe sat down, tired and happy.\n")
    held.write_text("id\tpath\ttext\nb\ty.flac\tshe sat down tired and happy\n")
    data, exp = tmp_path / "data", tmp_path / "exp"
    run = lambda *a: subprocess.run([sys.executable, *map(str, a)], cwd=REPO, capture_output=True, text=True)  # noqa: E731
    out = run("recipes/punctuation/prepare.py", data, "--web", web, "--jargon", jargon, "--prompts", prompts,
              "--exclude", held)
    assert out.returncode == 0, out.stderr
    stats = json.loads((data / "stats.json").read_text())
    assert stats["dropped_held_out"] == 1 and stats["prompts/train"]["paragraphs"] == 1
    train = (data / "train.txt").read_text()
    assert "a note" not in train and "she sat down" not in train.lower() and "Where are you going?" in train
    out = run("recipes/punctuation/train.py", data, exp, "--steps", "30", "--eval-every", "15", "--batch", "8")
    assert out.returncode == 0, out.stderr
    out = run("recipes/punctuation/train.py", data, exp, "--export", exp / "p.onnx")
    assert out.returncode == 0, out.stderr
    model = Punctuator(exp / "p.onnx")
    assert model.card["steps"] in (15, 30) and "trained_on" in model.card and "they" in model.vocab
    tokens = model("where are you going".split())
    assert len(tokens) == 4 and tokens[0].case == "cap" and tokens[-1].mark in ".?"
