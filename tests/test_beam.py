"""Beam search with an n-gram LM, hotwords, word times and confidences, on real audio.

`tiny_model` transcribes its eight clips perfectly; `weak_model` is the same recipe stopped
early, so it misspells them as a small acoustic model does. `cathy_lm` is a 3-gram built by
`asr lm build` from Cathy training prompts (tests/data/lm/README.md).
"""
import gzip
import json
import shutil

import numpy as np
import pytest
import torch

from asr.audio import SAMPLE_RATE, load_audio
from asr.beam import (BeamDecoder, BeamOptions, BeamSearch, LMError, _drop_blank_runs, align_words,
                      load_language_model, parse_hotword)
from asr.decoding import GreedyDecoder, greedy_text
from asr.evaluate import score
from asr.logmel import log_mel
from asr.streaming import Recognizer
from asr.text import encode
from asr.transcribe import transcribe

FRAME = 0.04


@pytest.fixture(scope="module")
def weak_model(data_dir):
    from asr.export import load
    return load(data_dir / "tiny_weak.pt")


@pytest.fixture(scope="module")
def cathy_lm(data_dir):
    return data_dir / "lm" / "cathy-3gram.arpa.gz"


def log_probs_of(model, path) -> np.ndarray:
    """A runtime model's log-probs (U, V) for an audio file."""
    feats = log_mel(load_audio(path), model.fbank)
    lp, n = model(feats[None], np.array([len(feats)]))
    return lp[0, : int(n[0])]


@pytest.fixture(scope="module")
def weak_log_probs(weak_model, cathy_clips):
    return [(log_probs_of(weak_model, p), text) for p, text in cathy_clips]


def endpoint(model, path) -> tuple[int, int]:
    """An endpoint where a stream would cut, in a pause: (words before it, sample index) in
    the middle of the longest run of blank or space frames between words."""
    best = log_probs_of(model, path).argmax(-1).tolist()
    runs, start = [], None
    for i, t in enumerate(best + [2]):
        if t <= 1 and start is None:
            start = i
        elif t > 1 and start is not None:
            runs.append((i - start, start, i))
            start = None
    length, a, b = max(r for r in runs if r[1] > 0 and r[2] < len(best))
    middle = (a + b) // 2
    words_before = len(greedy_text(log_probs_of(model, path)[:middle]).split())
    # after N samples the model has emitted (N - 240) // 640 - lookahead frames (the STFT
    # window's half and the lookahead are still to come)
    return words_before, (middle + model.cfg.lookahead) * 640 + 320


def beam(search):
    return lambda: BeamDecoder(search, FRAME)


def test_beam_without_lm_equals_greedy_on_a_confident_model(tiny_model, cathy_clips):
    search = BeamSearch(None, BeamOptions(beam_size=8))
    for path, text in cathy_clips[:4]:
        greedy = transcribe(tiny_model, path, punctuation=False)
        result = transcribe(tiny_model, path, beam(search), punctuation=False)
        assert result.text == greedy.text == text
        # the same path: identical times and confidences
        assert [(w.word, w.start, w.end, round(w.conf, 6)) for w in result.words] == \
               [(w.word, w.start, w.end, round(w.conf, 6)) for w in greedy.words]


def test_lm_corrects_what_greedy_misspells(weak_log_probs, cathy_lm):
    refs = [t for _, t in weak_log_probs]
    greedy = [greedy_text(lp) for lp, _ in weak_log_probs]
    search = BeamSearch(cathy_lm, BeamOptions(beam_size=32, alpha=0.8, beta=1.0))
    with_lm = [" ".join(search.search(lp)) for lp, _ in weak_log_probs]
    fixed = [i for i, (g, b, r) in enumerate(zip(greedy, with_lm, refs)) if g != r and b == r]
    assert fixed, f"no misspelled clip corrected: greedy {greedy}, beam+LM {with_lm}"
    assert score(refs, with_lm)["wer"] < score(refs, greedy)["wer"] - 0.1


def peaky(lp: np.ndarray, every: int = 2, run: int = 3) -> np.ndarray:
    """Log-probs as a peakier CTC model emits them: a run of confident blank frames after
    every `every` frames (the tiny models seldom emit blanks)."""
    blank = np.full((run, lp.shape[1]), -12.0, np.float32)
    blank[:, 0] = -1e-4
    parts = []
    for i in range(0, len(lp), every):
        parts += [lp[i:i + every], blank]
    return np.concatenate(parts)


def test_blank_run_collapse_gives_the_same_hypotheses(weak_log_probs, cathy_lm, monkeypatch):
    clips = [peaky(lp) for lp, _ in weak_log_probs[:4]]
    kept = _drop_blank_runs(np.clip(clips[0], np.log(1e-15), 0), -5.0)
    assert len(kept) <= len(clips[0]) * 3 // 5 + 1  # two of each three blank frames go
    search = BeamSearch(cathy_lm, BeamOptions(beam_size=16, alpha=0.8))
    fast = [search.search(x) for x in clips]
    monkeypatch.setattr("asr.beam._drop_blank_runs", lambda lp, _: lp)
    slow = [search.search(x) for x in clips]
    assert fast == slow and all(fast)


def test_hotword_recovers_a_rare_word_greedy_misses(weak_log_probs):
    target = "jeanne"
    lp, ref = next((lp, t) for lp, t in weak_log_probs if target in t.split())
    assert target not in greedy_text(lp).split()
    plain = BeamSearch(None, BeamOptions(beam_size=32))
    assert target not in plain.search(lp)
    hot = BeamSearch(None, BeamOptions(beam_size=32, hotwords=(parse_hotword(target),)))
    assert target in hot.search(lp)


def test_parse_hotword():
    assert parse_hotword("Jeanne") == ("jeanne", 10.0)
    assert parse_hotword("north country:6.5") == ("north country", 6.5)
    assert parse_hotword("3:2") == ("three", 2.0)
    with pytest.raises(ValueError, match="no letters"):
        parse_hotword("::")


def test_lm_context_carries_over_segments(cathy_lm):
    import kenlm
    lm = load_language_model(cathy_lm, 0.5, 1.0)
    model = lm._kenlm_model
    # scoring from the context state equals KenLM's own conditional score
    state = lm.state_after(["the", "danger"])
    expected = model.score("the danger trail", bos=True, eos=False) - model.score("the danger", bos=True, eos=False)
    out = kenlm.State()
    assert model.BaseScore(state, "trail", out) == pytest.approx(expected, abs=1e-4)
    assert model.BaseScore(lm.get_start_state(), "trail", out) < expected - 0.5  # context matters


def test_streaming_segments_keep_lm_context(tiny_model, cathy_clips, cathy_lm):
    search = BeamSearch(cathy_lm, BeamOptions(beam_size=16))
    seen = []
    original = search.search
    search.search = lambda lp, context=None: seen.append(list(context or [])) or original(lp, context)
    path, text = cathy_clips[0]  # "author of the danger trail philip steels etc"
    x = load_audio(path)
    stream = Recognizer(tiny_model, beam(search)).stream()
    n, cut = endpoint(tiny_model, path)
    for i in range(0, cut, 1600):
        stream.accept(x[i:min(i + 1600, cut)])
    first = stream.end_segment()
    for i in range(cut, len(x), 1600):
        stream.accept(x[i:i + 1600])
    last = stream.finish()
    assert f"{first.text} {last.text}" == text
    assert [w.word for w in first.words] == text.split()[:n]
    assert seen[0] == [] and seen[1] == text.split()[:n]  # the second segment's LM context


def test_word_times_match_forced_alignment(tiny_model, cathy_clips, cathy_lm):
    """Word boundaries from a CTC forced alignment of the reference transcript on the
    model's own emissions; the streamed, segmented, beam+LM decoding must land within 0.1 s."""
    from torchaudio.functional import forced_align
    search = BeamSearch(cathy_lm, BeamOptions(beam_size=16))
    for path, text in cathy_clips[:3]:
        lp = log_probs_of(tiny_model, path)
        ids = encode(text)
        ali, _ = forced_align(torch.from_numpy(lp)[None], torch.tensor([ids], dtype=torch.int32), blank=0)
        ref = align_words(lp, text.split(), 0, FRAME)  # the reference path, timed the same way
        ali = ali[0].tolist()
        assert sum(1 for i, t in enumerate(ali) if t and (i == 0 or ali[i - 1] != t)) == len(ids)
        x = load_audio(path)
        stream = Recognizer(tiny_model, beam(search)).stream()
        _, cut = endpoint(tiny_model, path)
        for i in range(0, cut, 1600):
            stream.accept(x[i:min(i + 1600, cut)])
        words = stream.end_segment().words  # an endpoint in mid-clip: times stay absolute
        for i in range(cut, len(x), 1600):
            stream.accept(x[i:i + 1600])
        words += stream.finish().words
        assert [w.word for w in words] == text.split()
        for w, r in zip(words, ref):
            assert abs(w.start - r.start) <= 0.1 and abs(w.end - r.end) <= 0.1, (w, r)
            assert 0.0 <= w.conf <= 1.0
        assert words[-1].end <= len(x) / SAMPLE_RATE + FRAME


def test_numpy_forced_alignment_equals_torchaudios(weak_log_probs, cathy_clips):
    """beam.forced_align (numpy, what the runtime times words with) takes the path torchaudio's
    forced_align takes: on real log-probs with their transcripts and with wrong ones, and on
    random ones, tight fits (as many frames as the tokens need) and repeats included. Where
    partial paths tie exactly, it still finds a best path (torchaudio 2.11 at times does not)."""
    from torchaudio.functional import forced_align as torchaudio_align

    from asr.beam import forced_align

    def reference(lp, ids):
        path, _ = torchaudio_align(torch.from_numpy(lp)[None], torch.tensor([ids], dtype=torch.int32), blank=0)
        return path[0].tolist()

    def need(ids):
        return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))

    def score(lp, path):
        return float(lp[np.arange(len(path)), path].sum(dtype=np.float64))

    cases = [(lp, encode(text)) for lp, text in weak_log_probs]
    cases += [(lp, encode(text)) for (lp, _), (_, text) in zip(weak_log_probs, cathy_clips[1:] + cathy_clips[:1])]
    rng = np.random.default_rng(0)
    ties = []
    for i in range(300):
        ids = rng.integers(1, 29, int(rng.integers(1, 12))).tolist()
        if i % 3 == 1:
            ids = [ids[0]] * len(ids)  # all repeats: each needs a blank between
        lp = rng.normal(size=(need(ids) + int(rng.integers(0, 6)), 29)).astype(np.float32)
        (ties if i % 3 == 2 else cases).append((np.round(lp) if i % 3 == 2 else lp, ids))
    for lp, ids in cases:
        lp = lp - np.log(np.exp(lp).sum(1, keepdims=True))
        if len(lp) >= need(ids):
            assert forced_align(lp, ids) == reference(lp, ids)
    for lp, ids in ties:
        lp = lp - np.log(np.exp(lp).sum(1, keepdims=True))
        path = forced_align(lp, ids)
        collapsed = [t for k, t in enumerate(path) if t and (k == 0 or path[k - 1] != t)]
        assert collapsed == ids and score(lp, path) >= score(lp, reference(lp, ids)) - 1e-5
    with pytest.raises(ValueError):
        forced_align(np.zeros((3, 29), np.float32), [5, 5, 6])  # needs 4 frames


def test_confidence_is_low_where_the_lm_overrode_the_acoustics(weak_log_probs, cathy_lm):
    search = BeamSearch(cathy_lm, BeamOptions(beam_size=32, alpha=0.8, beta=1.0))
    greedy_confs, changed_confs = [], []
    for lp, _ in weak_log_probs:
        greedy = GreedyDecoder(FRAME)
        greedy.update(lp)
        g = {w.word for w in greedy.finalize()}
        for w in search.words(lp, 0, FRAME):
            (greedy_confs if w.word in g else changed_confs).append(w.conf)
    assert changed_confs and greedy_confs
    assert np.mean(changed_confs) < np.mean(greedy_confs)
    assert all(0.0 <= c <= 1.0 for c in greedy_confs + changed_confs)


@pytest.mark.parametrize("content,reason,run_cli", [
    (None, "no such language model file", True),
    (b"", "empty file", False),
    (b"hello\nthis is not a model\n", "not a usable ARPA or KenLM binary", False),
    ("truncated", "End of file", True),
])
def test_bad_lm_is_one_clear_line(cli, tmp_path, cathy_clips, tiny_model_path, cathy_lm, content, reason, run_cli):
    lm = tmp_path / "lm.arpa"
    if content == "truncated":
        arpa = gzip.decompress(cathy_lm.read_bytes())
        lm.write_bytes(arpa[: len(arpa) // 2])
    elif content is not None:
        lm.write_bytes(content)
    with pytest.raises(LMError) as err:
        load_language_model(lm, 0.5, 1.0)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{lm}: ") and reason in message
    if run_cli:  # and as the command line shows it
        r = cli("transcribe", cathy_clips[0][0], "--model", tiny_model_path, "--lm", lm)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.strip() == f"asr: error: {message}"


def test_transcribe_cli_with_lm_gives_timed_words(cli, cathy_clips, tiny_model_path, cathy_lm, tmp_path):
    path, text = cathy_clips[3]
    r = cli("transcribe", path, "--model", tiny_model_path, "--lm", cathy_lm, "--beam-size", "16",
            "--alpha", "0.8", "--hotword", "spell:2", "-f", "all", "-o", tmp_path, "--word-level", "--no-punctuation")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / (path.stem + ".json")).read_text())
    assert out["text"] == text
    words = [w for s in out["segments"] for w in s["words"]]
    assert [w["word"] for w in words] == text.split()
    assert all(0 <= w["start"] < w["end"] <= out["duration"] + FRAME and 0 <= w["conf"] <= 1 for w in words)
    assert (tmp_path / (path.stem + ".srt")).read_text().count(" --> ") == len(words)


def test_a_long_segment_is_searched_in_pieces_independent_of_chunking(tiny_model, cathy_clips, cathy_lm):
    """34 s of log-probs with no endpoint (the clips' own, one after another, twice): searched
    in pieces cut between words as they come, whatever the chunking."""
    space = np.full((1, 29), -12.0, np.float32)
    space[0, 1] = -1e-4  # a space between sentences, as a model trained on running speech emits
    lp = np.concatenate([x for p, _ in cathy_clips for x in (log_probs_of(tiny_model, p), space)] * 2)
    text = " ".join(t for _, t in cathy_clips)
    search = BeamSearch(cathy_lm, BeamOptions(beam_size=8))
    pieces = []
    original = search.words
    search.words = lambda x, *a: pieces.append(len(x)) or original(x, *a)
    results = []
    for chunk in (len(lp), 7, 100):
        dec = BeamDecoder(search, FRAME)
        for i in range(0, len(lp), chunk):
            dec.update(lp[i:i + chunk])
        results.append([(w.word, w.start, w.end, w.conf) for w in dec.finalize()])
    assert results[0] == results[1] == results[2]
    assert " ".join(w for w, *_ in results[0]) == text + " " + text
    assert len(pieces) == 6 and 250 <= pieces[0] < 500  # two pieces per run, the first cut between words
    assert [w[1] for w in results[0]] == sorted(w[1] for w in results[0])


def weak_model_naming_own_lm(data_dir, folder, **weights):
    """tiny_weak.pt with a card entry `lm: {file, alpha, beta}` naming own.arpa.gz beside it (as
    the bundled default names its LM); the LM file itself is the caller's to put there.
    weights: the card's alpha and beta (default 0.8 and 1.0; None leaves one out)."""
    from asr.checkpoint import atomic_save, read_payload
    payload = read_payload(data_dir / "tiny_weak.pt")
    entry = {"file": "own.arpa.gz", **{k: v for k, v in {"alpha": 0.8, "beta": 1.0, **weights}.items() if v is not None}}
    payload["card"] = dict(payload.get("card") or {}, lm=entry)
    atomic_save(payload, folder / "weak_with_lm.pt")
    return folder / "weak_with_lm.pt"


def test_a_model_file_can_bring_its_own_lm(cli, data_dir, cathy_lm, tmp_path):
    """A card entry `lm: {file, alpha, beta}` names an LM beside the model file (as the bundled
    default does); commands use it unless --lm or --no-lm says otherwise."""
    model = weak_model_naming_own_lm(data_dir, tmp_path)
    manifest = data_dir / "cathy" / "manifest.tsv"

    def wer(*extra):
        r = cli("evaluate", manifest, "--model", model, "--json", *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["wer"]

    assert cli("evaluate", manifest, "--model", model).returncode == 2  # the card's LM is not there yet
    shutil.copy(cathy_lm, tmp_path / "own.arpa.gz")
    greedy, own = wer("--no-lm"), wer()
    assert own < greedy - 0.1
    assert wer("--lm", cathy_lm, "--alpha", "0.8") == own


def test_decoder_for_follows_the_model_file(tiny_model, data_dir, cathy_lm, tmp_path, cathy_clips):
    import asr
    assert asr.decoder_for(tiny_model).search is None  # no LM of its own: greedy
    assert isinstance(asr.decoder_for(tiny_model)(), GreedyDecoder)
    model = asr.load_model(weak_model_naming_own_lm(data_dir, tmp_path))
    shutil.copy(cathy_lm, tmp_path / "own.arpa.gz")
    clip, text = cathy_clips[0]
    own = asr.transcribe(model, clip, punctuation=False).text  # by default, as the CLI: its own LM
    explicit = asr.transcribe(model, clip, asr.decoder_for(model, lm=cathy_lm, alpha=0.8, beta=1.0), punctuation=False).text
    assert own == explicit == text
    assert asr.transcribe(model, clip, "greedy", punctuation=False).text != text  # greedy: the weak model misspells
    with pytest.raises(asr.LMError):
        asr.decoder_for(model, lm=tmp_path / "missing.arpa")


def test_decoder_for_applies_the_cards_weights_once_and_what_is_given_over_them(data_dir, cathy_lm, tmp_path):
    """The one place that decides a model's decoders: the card's LM with its tuned alpha and
    beta unless given; an LM named by the caller gets BeamOptions' defaults, not the card's
    weights (they were tuned for the card's LM); lm="none" is no LM at all."""
    import asr
    from asr.beam import DEFAULT_ALPHA, DEFAULT_BEAM_SIZE, DEFAULT_BETA, NO_LM, decoder_for
    shutil.copy(cathy_lm, tmp_path / "own.arpa.gz")
    model = asr.load_model(weak_model_naming_own_lm(data_dir, tmp_path, alpha=0.3, beta=2.5))

    def options(**choices):
        decoders = decoder_for(model, **choices)
        assert decoders.search is not None and isinstance(decoders(), BeamDecoder)
        o = decoders.search.options
        return o.beam_size, o.alpha, o.beta, decoders.search.language_model is not None

    assert options() == (DEFAULT_BEAM_SIZE, 0.3, 2.5, True)  # the card's LM and weights
    assert options(alpha=0.9) == (DEFAULT_BEAM_SIZE, 0.9, 2.5, True)  # given over the card's
    assert options(beta=-1.0, beam_size=4) == (4, 0.3, -1.0, True)
    assert options(lm=cathy_lm) == (DEFAULT_BEAM_SIZE, DEFAULT_ALPHA, DEFAULT_BETA, True)
    assert options(lm=NO_LM, beam_size=8) == (8, DEFAULT_ALPHA, DEFAULT_BETA, False)  # beam search without LM
    assert options(lm=NO_LM, hotwords=["danger:5"])[3] is False
    assert decoder_for(model, lm=NO_LM).search is None  # greedy
    assert isinstance(decoder_for(model, lm=NO_LM)(), GreedyDecoder)
    unweighed = asr.load_model(weak_model_naming_own_lm(data_dir, tmp_path, alpha=None, beta=None))
    o = decoder_for(unweighed).search.options  # a card LM without weights: the defaults
    assert (o.alpha, o.beta) == (DEFAULT_ALPHA, DEFAULT_BETA)


@pytest.mark.parametrize("choices, message", [
    ({"lm": "none", "alpha": 0.5}, "--alpha and --beta weigh a language model: give --lm PATH"),
    ({"lm": "none", "beta": 0.0}, "--alpha and --beta weigh a language model: give --lm PATH"),
    ({"beam_size": 0}, "the beam size must be at least 1 (got 0)"),
    ({"beam_size": 8, "alpha": float("nan")}, "alpha must be a finite number (got nan)"),
    ({"beam_size": 8, "beta": float("inf")}, "beta must be a finite number (got inf)"),
    ({"hotwords": ["x:abc"]}, "hotword 'x:abc': the weight after the colon must be a number (WORD[:WEIGHT])"),
])
def test_decoder_for_refuses_bad_choices_with_one_clear_line(tiny_model, choices, message):
    from asr.beam import decoder_for
    with pytest.raises(ValueError) as err:
        decoder_for(tiny_model, **choices)
    assert str(err.value) == message


def test_beam_options_check_their_values():
    assert BeamOptions(beam_size=1, alpha=0.0, beta=-3.0).beam_size == 1
    for bad in ({"beam_size": 0}, {"beam_size": -2}, {"alpha": float("nan")}, {"beta": float("-inf")}):
        with pytest.raises(ValueError):
            BeamOptions(**bad)
