"""`asr transcribe` end to end on real audio, as a user runs it."""
import json
import re

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio

SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
VTT_TIME = r"(?:(\d\d):)?(\d\d):(\d\d)\.(\d\d\d)"


def seconds(match):
    h, m, s, ms = (int(g or 0) for g in match)
    assert m < 60 and s < 60
    return h * 3600 + m * 60 + s + ms / 1000


def test_transcribes_real_speech_to_stdout(cli, tiny_model_path, cathy_clips):
    path, text = cathy_clips[2]
    out = cli("transcribe", path, "--model", tiny_model_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == text
    assert out.stderr == ""


def test_all_formats_are_well_formed(cli, tiny_model_path, cathy_clips, tmp_path):
    path, text = cathy_clips[0]
    out = cli("transcribe", path, "--model", tiny_model_path, "--format", "all", "--output-dir", tmp_path)
    assert out.returncode == 0, out.stderr
    stem = path.stem
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{stem}.{e}" for e in ("txt", "json", "srt", "vtt", "tsv"))
    assert (tmp_path / f"{stem}.txt").read_text().strip() == text

    data = json.loads((tmp_path / f"{stem}.json").read_text())
    assert data["text"] == text
    assert abs(data["duration"] - sf.info(path).duration) < 0.01
    words = [w for s in data["segments"] for w in s["words"]]
    assert " ".join(w["word"] for w in words) == text
    for seg in data["segments"]:
        assert set(seg) >= {"start", "end", "text", "words"}
        assert 0 <= seg["start"] <= seg["end"] <= data["duration"] + 0.05
    for a, b in zip(words, words[1:]):
        assert a["start"] < a["end"] <= b["start"] < b["end"]

    srt = (tmp_path / f"{stem}.srt").read_text()
    blocks = [b for b in srt.strip().split("\n\n") if b]
    last = -1.0
    for i, block in enumerate(blocks, 1):
        lines = block.split("\n")
        assert lines[0] == str(i)
        m = re.fullmatch(f"{SRT_TIME} --> {SRT_TIME}", lines[1])
        assert m, lines[1]
        start, end = seconds(m.groups()[:4]), seconds(m.groups()[4:])
        assert last <= start <= end
        last = end
        assert lines[2].strip()

    vtt = (tmp_path / f"{stem}.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n")
    cues = re.findall(f"^{VTT_TIME} --> {VTT_TIME}$", vtt, re.M)
    assert cues
    last = -1.0
    for cue in cues:
        start, end = seconds(cue[:4]), seconds(cue[4:])
        assert last <= start <= end
        last = end

    rows = (tmp_path / f"{stem}.tsv").read_text().strip().split("\n")
    assert rows[0] == "start\tend\ttext"
    for row in rows[1:]:
        start, end, line = row.split("\t")
        assert int(start) <= int(end) and line


def test_word_level_subtitles(cli, tiny_model_path, cathy_clips):
    path, text = cathy_clips[1]
    out = cli("transcribe", path, "--model", tiny_model_path, "-f", "vtt", "--word-level")
    assert out.returncode == 0, out.stderr
    assert len(re.findall("-->", out.stdout)) == len(text.split())


def test_stream_mode_gives_the_offline_result(cli, tiny_model_path, cathy_clips):
    paths = [p for p, _ in cathy_clips]
    offline = cli("transcribe", *paths, "--model", tiny_model_path, "-f", "json")
    streamed = cli("transcribe", *paths, "--model", tiny_model_path, "-f", "json", "--stream", "--chunk-ms", "30")
    assert offline.returncode == 0 and streamed.returncode == 0, offline.stderr + streamed.stderr
    a = [json.loads(line) for line in offline.stdout.splitlines()]
    b = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert len(a) == len(paths)
    assert a == b
    assert [r["text"] for r in a] == [t for _, t in cathy_clips]


def test_any_rate_and_channels(cli, tiny_model_path, cathy_clips, tmp_path):
    path, text = cathy_clips[3]
    x = load_audio(path)
    import soxr
    y = soxr.resample(x, 16000, 44100)
    stereo = tmp_path / "stereo44k.wav"
    sf.write(stereo, np.stack([y, y], 1), 44100, subtype="PCM_24")
    out = cli("transcribe", stereo, "--model", tiny_model_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == text


def test_bad_inputs_in_a_batch(cli, tiny_model_path, cathy_clips, tmp_path):
    good1, text1 = cathy_clips[4]
    good2, text2 = cathy_clips[5]
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notaudio.flac").write_text("hello")
    nan = load_audio(good1)
    nan[1000:1010] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    cut = tmp_path / "cut.wav"
    sf.write(cut, load_audio(good1), 16000)
    cut.write_bytes(cut.read_bytes()[:20000])
    bad = [tmp_path / "missing.wav", tmp_path / "empty.wav", tmp_path / "notaudio.flac", tmp_path / "nan.wav", cut]
    out = cli("transcribe", good1, *bad, good2, "--model", tiny_model_path, "-f", "json", "--output-dir", tmp_path / "out")
    assert out.returncode == 1
    errors = out.stderr.strip().split("\n")
    assert len(errors) == len(bad), out.stderr
    for line, path in zip(errors, bad):
        assert line.startswith(f"asr: error: {path}: "), line
    assert "Traceback" not in out.stderr
    assert json.loads((tmp_path / "out" / f"{good1.stem}.json").read_text())["text"] == text1
    assert json.loads((tmp_path / "out" / f"{good2.stem}.json").read_text())["text"] == text2


def test_usage_errors(cli, tiny_model_path, cathy_clips, tmp_path):
    path, _ = cathy_clips[0]
    out = cli("transcribe", path, "--model", tmp_path / "nope.pt")
    assert out.returncode == 2 and out.stderr.strip() == f"asr: error: {tmp_path / 'nope.pt'}: no such model file"
    out = cli("transcribe", path, "--model", tiny_model_path, "--format", "all")
    assert out.returncode == 2 and "--output-dir" in out.stderr
    out = cli("transcribe", path, "--model", tiny_model_path, "--stream", "--chunk-ms", "0")
    assert out.returncode == 2 and "chunk-ms" in out.stderr


def test_bidirectional_model_refuses_stream(cli, tmp_path, cathy_clips):
    from asr.checkpoint import save_model
    from asr.model import AcousticModel, ModelConfig
    save_model(AcousticModel(ModelConfig(conv_channels=8, hidden_size=8, num_layers=1, bidirectional=True, lookahead=0)),
               tmp_path / "bi.pt")
    path, _ = cathy_clips[0]
    out = cli("transcribe", path, "--model", tmp_path / "bi.pt", "--stream")
    assert out.returncode == 2 and "cannot stream" in out.stderr
    out = cli("transcribe", path, "--model", tmp_path / "bi.pt")
    assert out.returncode == 0, out.stderr


def test_without_a_bundled_model_the_cli_says_so(monkeypatch, capsys, cathy_clips):
    import asr.checkpoint
    from asr.cli import main
    monkeypatch.setattr(asr.checkpoint, "default_model_path", lambda: None)
    with pytest.raises(SystemExit) as exit_:
        main(["transcribe", str(cathy_clips[0][0])])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no default model is bundled" in err and err.count("\n") == 1


def test_python_module_and_version(cli):
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("asr ")
