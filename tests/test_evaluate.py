"""`asr evaluate`: scores, the worst utterances, and what it says about rows and files it skips."""
import json

from asr.data import read_manifest

from conftest import REPO


def manifest_with_errors(cathy_manifest, tmp_path, extra_rows=()):
    """Four real clips; two references changed so the tiny model's (correct) output has errors:
    one word of a short clip (high WER, one error), two words of a long clip (lower WER, more errors)."""
    utts = sorted(read_manifest(cathy_manifest), key=lambda u: len(u.text.split()))
    short, long, *perfect = utts[0], utts[-1], *utts[1:3]
    words = short.text.split()
    short_ref = " ".join(["zebra"] + words[1:])
    words = long.text.split()
    long_ref = " ".join(["zebra", "zebra"] + words[2:])
    rows = ["id\tpath\tseconds\ttext", f"short\t{short.path}\t\t{short_ref}", f"long\t{long.path}\t\t{long_ref}"]
    rows += [f"{u.id}\t{u.path}\t\t{u.text}" for u in perfect] + list(extra_rows)
    path = tmp_path / "dev.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path, len(short.text.split()), len(long.text.split())


def test_worst_is_ordered_by_wer_and_lists_no_perfect_utterance(cli, cathy_manifest, tiny_model_path, tmp_path):
    manifest, short_words, long_words = manifest_with_errors(cathy_manifest, tmp_path)
    assert 1 / short_words > 2 / long_words  # the short clip's WER is higher, the long clip has more errors
    out = cli("evaluate", manifest, "--model", tiny_model_path, "--json", "--no-lm")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["utterances"] == 4 and result["skipped"] == 0
    assert [(r["id"], r["errors"]) for r in result["worst"]] == [("short", 1), ("long", 2)]
    assert abs(result["worst"][0]["wer"] - 1 / short_words) < 1e-9


def test_skipped_rows_and_files_are_counted_on_stderr_and_exit_1(cli, cathy_manifest, tiny_model_path, tmp_path):
    (tmp_path / "noise.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)
    manifest, _, _ = manifest_with_errors(cathy_manifest, tmp_path, [
        f"gone\t{tmp_path / 'missing.flac'}\t\thello",
        f"bad\t{tmp_path / 'noise.flac'}\t1.5\thello"])  # a duration given: its audio is read only when scored
    for extra in ([], ["--json"]):
        out = cli("evaluate", manifest, "--model", tiny_model_path, "--no-lm", *extra)
        assert out.returncode == 1, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 3, out.stderr
        assert lines[0].startswith(f"asr: warning: skipping {manifest}:6 ({tmp_path / 'missing.flac'}): audio file missing")
        assert lines[1].startswith(f"asr: error: {tmp_path / 'noise.flac'}: ")
        assert lines[2] == ("asr: skipped 2 utterance(s) (1 manifest row(s), 1 unreadable audio file(s)); "
                            "the scores are of the other 4")
        assert "Traceback" not in out.stderr
    assert json.loads(out.stdout)["skipped"] == 2


def test_an_audio_file_given_as_the_manifest_says_so(cli, cathy_clips, tiny_model_path, tmp_path):
    path, _ = cathy_clips[0]
    out = cli("evaluate", path, "--model", tiny_model_path)
    assert out.returncode == 2
    assert out.stderr.startswith(f"asr: error: {path}: is an audio file, not a manifest; a manifest is a TSV file")
    assert out.stderr.count("\n") == 1
    binary = tmp_path / "x.tsv"
    binary.write_bytes(bytes(range(128, 256)) * 10)
    out = cli("evaluate", binary, "--model", tiny_model_path)
    assert out.returncode == 2 and out.stderr.startswith(f"asr: error: {binary}: not a manifest (not UTF-8 text)")


def test_tune_lm_counts_skipped_rows_and_files_and_exits_1(cli, cathy_manifest, tiny_model_path, tmp_path):
    """As evaluate: the grid is of the usable utterances; what was skipped is named and counted."""
    (tmp_path / "noise.flac").write_bytes(b"fLaC" + bytes(range(256)) * 8)
    manifest, _, _ = manifest_with_errors(cathy_manifest, tmp_path, [
        f"gone\t{tmp_path / 'missing.flac'}\t\thello",
        f"bad\t{tmp_path / 'noise.flac'}\t1.5\thello"])
    lm = REPO / "tests" / "data" / "lm" / "cathy-3gram.arpa.gz"
    for extra in ([], ["--json"]):
        out = cli("tune-lm", manifest, "--model", tiny_model_path, "--lm", lm, "--alphas", "0,0.5", "--betas", "0",
                  *extra)
        assert out.returncode == 1, out.stderr
        lines = out.stderr.strip().splitlines()
        assert lines[0].startswith(f"asr: warning: skipping {manifest}:6 ({tmp_path / 'missing.flac'}): audio file missing")
        assert lines[1].startswith(f"asr: error: {tmp_path / 'noise.flac'}: ")
        assert lines[-1] == ("asr: skipped 2 utterance(s) (1 manifest row(s), 1 unreadable audio file(s)); "
                             "the scores are of the other 4")
        assert "Traceback" not in out.stderr
    result = json.loads(out.stdout)
    assert result["skipped"] == 2 and result["utterances"] == 4


def test_evaluate_reports_punctuation_where_references_are_punctuated(cli, cathy_manifest, tiny_model_path):
    """Cathy's references keep their marks and capitals: WER is of normalised text, as before,
    and the punctuation model's F1 per mark and casing accuracy come beside it."""
    out = cli("evaluate", cathy_manifest, "--model", tiny_model_path, "--json", "--no-lm")
    plain = cli("evaluate", cathy_manifest, "--model", tiny_model_path, "--json", "--no-lm", "--no-punctuation")
    assert out.returncode == 0 and plain.returncode == 0, out.stderr + plain.stderr
    result, raw = json.loads(out.stdout), json.loads(plain.stdout)
    assert result["wer"] == raw["wer"] == 0.0  # the marks do not count as errors
    p = result["punctuation"]
    assert p["utterances"] == result["utterances"] and p["words"] > 50
    assert set(p) >= {"comma", "period", "question", "casing_accuracy", "all_marks_f1"}
    assert p["period"]["support"] >= result["utterances"] - 1 and p["period"]["f1"] > 0.5
    assert 0.8 < p["casing_accuracy"] <= 1.0
    assert "punctuation" not in raw
    text = cli("evaluate", cathy_manifest, "--model", tiny_model_path, "--no-lm").stdout
    assert "punctuation (" in text and "casing accuracy" in text


def test_manifest_problems_are_one_plain_line(cli, cathy_manifest, tiny_model_path, tmp_path):
    out = cli("evaluate", tmp_path, "--model", tiny_model_path)
    assert out.returncode == 2 and out.stderr.strip().startswith(f"asr: error: {tmp_path}: is a folder, not a manifest")
    (tmp_path / "sub").mkdir()
    rows = (tmp_path / "m.tsv")
    rows.write_text(f"id\tpath\ttext\nd\t{tmp_path / 'sub'}\thello\n" + "".join(
        f"{u.id}\t{u.path}\t{u.text}\n" for u in read_manifest(cathy_manifest)[:1]))
    out = cli("evaluate", rows, "--model", tiny_model_path, "--no-lm")
    assert "names a folder, not an audio file" in out.stderr and "audio file missing" not in out.stderr


def test_an_unreadable_manifest_is_one_plain_line_not_errno(cathy_manifest, monkeypatch):
    import pytest

    from asr import manifest

    def denied(path, *args):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(manifest, "_read_rows", denied)
    with pytest.raises(OSError) as err:
        read_manifest(cathy_manifest)
    assert str(err.value) == f"{cathy_manifest}: cannot read the manifest (permission denied)"
    assert "Errno" not in str(err.value)
