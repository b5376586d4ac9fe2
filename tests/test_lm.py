"""Building, converting and tuning n-gram language models."""

import pytest

from asr.lm import kenlm_tool
from asr.pocketsphinx_lm import read_pocketsphinx_trie
from asr.text import normalize

ARPA = """\\data\\
ngram 1=6
ngram 2=6
ngram 3=3

\\1-grams:
-1.0\t<s>\t-0.3
-0.7\t</s>
-0.8\tthe\t-0.25
-1.2\tcat\t-0.2
-1.1\tsat\t-0.15
-1.5\tmat\t-0.1

\\2-grams:
-0.3\t<s> the\t-0.1
-0.4\tthe cat\t-0.2
-0.5\tcat sat\t-0.05
-0.6\tsat </s>
-0.7\tthe mat\t-0.1
-0.2\tmat </s>

\\3-grams:
-0.1\t<s> the cat
-0.2\tthe cat sat
-0.3\tcat sat </s>

\\end\\
"""

needs_lmplz = pytest.mark.skipif(kenlm_tool("lmplz") is None or kenlm_tool("build_binary") is None,
                                 reason="KenLM's lmplz/build_binary not installed (scripts/install-kenlm-tools.sh)")


@pytest.fixture()
def pocketsphinx_trie(tmp_path):
    """A small trigram model written by pocketsphinx itself in its packed trie format."""
    pocketsphinx = pytest.importorskip("pocketsphinx")
    arpa = tmp_path / "small.arpa"
    arpa.write_text(ARPA)
    model = pocketsphinx.NGramModel.readfile(str(arpa))
    path = tmp_path / "small.lm.bin"
    model.write(str(path), pocketsphinx.NGramModel.str_to_type("bin"))
    return arpa, path


def test_pocketsphinx_trie_reads_back_the_model_it_was_made_from(pocketsphinx_trie):
    arpa, path = pocketsphinx_trie
    words, orders = read_pocketsphinx_trie(path)
    got = {}
    for ids, probs, backoffs in orders:
        for k, row in enumerate(ids):
            got[" ".join(words[w] for w in row)] = (float(probs[k]), None if backoffs is None else float(backoffs[k]))
    expected = {}
    for line in ARPA.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            expected[parts[1]] = (float(parts[0]), float(parts[2]) if len(parts) == 3 else None)
    assert set(got) == set(expected)
    for ngram, (prob, bo) in expected.items():
        assert got[ngram][0] == pytest.approx(prob, abs=1e-3), ngram
        if bo is not None and got[ngram][1] is not None:
            assert got[ngram][1] == pytest.approx(bo, abs=1e-3), ngram


def test_convert_pocketsphinx_cli_gives_an_equivalent_arpa(cli, pocketsphinx_trie, tmp_path):
    import kenlm
    arpa, path = pocketsphinx_trie
    out = tmp_path / "converted.arpa"
    r = cli("lm", "convert-pocketsphinx", path, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "1-grams=6 2-grams=6 3-grams=3" in r.stdout
    a, b = kenlm.Model(str(arpa)), kenlm.Model(str(out))
    for sentence in ["the cat sat", "the mat", "cat the mat sat", "the dog sat"]:
        assert b.score(sentence) == pytest.approx(a.score(sentence), abs=1e-3)


def test_convert_pocketsphinx_rejects_other_files(cli, tmp_path):
    bad = tmp_path / "x.lm.bin"
    bad.write_bytes(b"\0" * 100)
    r = cli("lm", "convert-pocketsphinx", bad, "-o", tmp_path / "y.arpa")
    assert r.returncode == 2 and r.stderr.strip() == f"asr: error: {bad}: not a pocketsphinx trie language model"


@needs_lmplz
def test_lm_build_normalises_text_and_leaves_out_excluded_sentences(cli, tmp_path, cathy_manifest):
    import kenlm
    text = tmp_path / "books.txt"
    text.write_text("The Danger Trail, by Philip Steels!\nIn 1908 it was 42% cheaper.\n\n"
                    "Meanwhile I'll go out to breathe a spell.\n")
    out = tmp_path / "lm.arpa"
    r = cli("lm", "build", text, cathy_manifest, "-o", out, "--order", "3", "--exclude", cathy_manifest)
    assert r.returncode == 0, r.stderr
    # every sentence of the manifest is excluded, also where it came from books.txt
    assert "2 sentences" in r.stdout and "excluded 9 sentences" in r.stdout
    words = set()
    in_unigrams = False
    for line in out.read_text().splitlines():
        if line == "\\1-grams:":
            in_unigrams = True
        elif line.startswith("\\"):
            in_unigrams = False
        elif in_unigrams and line:
            words.add(line.split("\t")[1])
    assert {"danger", "philip", "nineteen", "oh", "eight", "forty", "two", "percent"} <= words
    assert "Danger" not in words and "meanwhile" not in words and "breathe" not in words
    model = kenlm.Model(str(out))
    assert model.order == 3
    assert model.score(normalize("the danger trail by philip steels")) > model.score("steels philip by trail danger the")


@needs_lmplz
def test_lm_build_binary_is_usable_for_decoding(cli, tmp_path, cathy_manifest, cathy_clips, tiny_model_path):
    out = tmp_path / "lm.bin"
    r = cli("lm", "build", cathy_manifest, "-o", out, "--order", "4")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lm.bin.vocab").read_text().split() and out.read_bytes()[:4] != b"\\dat"
    r = cli("transcribe", cathy_clips[0][0], "--model", tiny_model_path, "--lm", out, "--no-punctuation")
    assert r.returncode == 0 and r.stdout.strip() == cathy_clips[0][1]


@needs_lmplz
@pytest.mark.parametrize("case", ["missing", "empty"])
def test_lm_build_errors_are_one_line(cli, tmp_path, case):
    text = tmp_path / "t.txt"
    if case == "empty":
        text.write_text("!!!\n...\n")
    r = cli("lm", "build", text, "-o", tmp_path / "lm.arpa")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert ("no such text file" if case == "missing" else "no text") in r.stderr
    assert not (tmp_path / "lm.arpa").exists()


def test_tune_lm_finds_a_better_pair_than_greedy(data_dir, cathy_manifest):
    from asr.beam import BeamOptions, BeamSearch
    from asr.checkpoint import load_model
    from asr.data import read_manifest
    from asr.evaluate import tune_lm, utterance_log_probs
    log_probs, skipped = utterance_log_probs(load_model(data_dir / "tiny_weak.pt"), read_manifest(cathy_manifest))
    assert len(log_probs) == 8 and not skipped
    search = BeamSearch(data_dir / "lm" / "cathy-3gram.arpa.gz", BeamOptions(beam_size=16))
    out = tune_lm(log_probs, search, [0.0, 0.8], [0.0, 1.0])
    assert out["utterances"] == 8 and len(out["grid"]) == 4
    assert out["best"] == min(out["grid"], key=lambda g: (g["wer"], g["alpha"], abs(g["beta"])))
    assert out["best"]["alpha"] == 0.8 and out["best"]["wer"] < out["greedy_wer"] - 0.2


def test_tune_lm_cli_prints_the_surface_and_the_best_pair(cli, data_dir, cathy_manifest):
    r = cli("tune-lm", cathy_manifest, "--model", data_dir / "tiny_weak.pt", "--lm", data_dir / "lm" / "cathy-3gram.arpa.gz",
            "--alphas", "0,0.8", "--betas", "0,1", "--beam-size", "8")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("8 utterances, 55 words; greedy WER 32.73%")
    assert lines[2].split() == ["alpha\\beta", "0", "1"] and len(lines) == 6
    assert lines[-1].startswith("best: --alpha 0.8 --beta")


def test_tune_lm_bad_lm(cli, cathy_manifest, tiny_model_path, tmp_path):
    r = cli("tune-lm", cathy_manifest, "--model", tiny_model_path, "--lm", tmp_path / "nope.arpa")
    assert r.returncode == 2 and r.stderr.strip() == f"asr: error: {tmp_path / 'nope.arpa'}: no such language model file"
