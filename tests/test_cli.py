"""`asr transcribe` end to end on real audio, as a user runs it."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio
from asr.text import normalize

from conftest import REPO

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
    said = out.stdout.strip()
    assert normalize(said) == text and said != text  # punctuated and capitalised ...
    assert said[0].isupper() and said.endswith((".", "?"))
    assert out.stderr == ""
    raw = cli("transcribe", path, "--model", tiny_model_path, "--no-punctuation")
    assert raw.returncode == 0 and raw.stdout.strip() == text  # ... unless asked not to be


def test_all_formats_are_well_formed(cli, tiny_model_path, cathy_clips, tmp_path):
    path, text = cathy_clips[0]
    out = cli("transcribe", path, "--model", tiny_model_path, "--format", "all", "--output-dir", tmp_path)
    assert out.returncode == 0, out.stderr
    stem = path.stem
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{stem}.{e}" for e in ("txt", "json", "srt", "vtt", "tsv"))
    assert normalize((tmp_path / f"{stem}.txt").read_text()) == text

    data = json.loads((tmp_path / f"{stem}.json").read_text())
    assert normalize(data["text"]) == text and data["text"][0].isupper()
    assert abs(data["duration"] - sf.info(path).duration) < 0.01
    words = [w for s in data["segments"] for w in s["words"]]
    assert " ".join(w["word"] for w in words) == data["text"]
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
    assert [normalize(r["text"]) for r in a] == [t for _, t in cathy_clips]


def test_any_rate_and_channels(cli, tiny_model_path, cathy_clips, tmp_path):
    path, text = cathy_clips[3]
    x = load_audio(path)
    import soxr
    y = soxr.resample(x, 16000, 44100)
    stereo = tmp_path / "stereo44k.wav"
    sf.write(stereo, np.stack([y, y], 1), 44100, subtype="PCM_24")
    out = cli("transcribe", stereo, "--model", tiny_model_path)
    assert out.returncode == 0, out.stderr
    assert normalize(out.stdout) == text


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
    assert normalize(json.loads((tmp_path / "out" / f"{good1.stem}.json").read_text())["text"]) == text1
    assert normalize(json.loads((tmp_path / "out" / f"{good2.stem}.json").read_text())["text"]) == text2


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
    import asr.runtime
    from asr.cli import main
    monkeypatch.setattr(asr.runtime, "default_model_path", lambda offline=False, files=None: None)
    with pytest.raises(SystemExit) as exit_:
        main(["transcribe", str(cathy_clips[0][0])])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no default model is bundled" in err and err.count("\n") == 1


def test_python_module_and_version(cli):
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("asr ")


# --------------------------------------------------------------------------- inputs: pipes, standard input
def run_bytes(*args, stdin: bytes = b"", timeout=300) -> subprocess.CompletedProcess:
    """`python -m asr ARGS...` with bytes on standard input."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "asr", *map(str, args)], input=stdin, capture_output=True,
                          timeout=timeout, env=env)


def test_a_piped_wav_and_standard_input_are_transcribed(tiny_model_path, cathy_clips, tmp_path):
    """`ffmpeg -i clip -f wav pipe:1 > piped.wav` writes 0xFFFFFFFF as the data size; `-` reads stdin."""
    from test_audio import streamed_wav
    (path, text), (path2, text2) = cathy_clips[6], cathy_clips[7]
    sf.write(tmp_path / "clip.wav", load_audio(path), 16000, subtype="PCM_16")
    piped = streamed_wav((tmp_path / "clip.wav").read_bytes(), 0xFFFFFFFF)
    (tmp_path / "piped.wav").write_bytes(piped)
    out = run_bytes("transcribe", tmp_path / "piped.wav", "--model", tiny_model_path)
    assert out.returncode == 0, out.stderr
    assert normalize(out.stdout.decode()) == text
    out = run_bytes("transcribe", "-", "--model", tiny_model_path, stdin=piped)
    assert out.returncode == 0, out.stderr
    assert normalize(out.stdout.decode()) == text
    # FLAC on stdin beside a file, with outputs named stdin.*
    out = run_bytes("transcribe", path2, "-", "--model", tiny_model_path, "-f", "json", "-o", tmp_path / "out",
                    stdin=path.read_bytes())
    assert out.returncode == 0, out.stderr
    assert normalize(json.loads((tmp_path / "out" / "stdin.json").read_text())["text"]) == text
    assert normalize(json.loads((tmp_path / "out" / f"{path2.stem}.json").read_text())["text"]) == text2
    out = run_bytes("transcribe", "-", "--model", tiny_model_path, stdin=b"")
    assert out.returncode == 1 and out.stderr.decode() == "asr: error: <stdin>: empty input (0 bytes)\n"
    out = run_bytes("transcribe", "-", "-", "--model", tiny_model_path, stdin=piped)
    assert out.returncode == 2 and "more than once" in out.stderr.decode()


# --------------------------------------------------------------------------- outputs
def test_an_unusable_output_dir_is_a_usage_error_before_any_work(cli, tiny_model_path, cathy_clips, tmp_path):
    path, _ = cathy_clips[0]
    (tmp_path / "taken").write_text("a file")
    for out_dir, reason in [(tmp_path / "taken", "exists and is not a folder"),
                            (tmp_path / "taken" / "sub", "cannot create it (not a directory)")]:
        out = cli("transcribe", path, "--model", tmp_path / "no-model-needed.pt", "-o", out_dir)
        assert out.returncode == 2, out.stderr
        assert out.stderr == f"asr: error: --output-dir {out_dir}: {reason}\n"  # before the model is even loaded


def test_an_output_dir_without_write_permission_is_a_usage_error(tiny_model_path, cathy_clips, tmp_path):
    from test_audio import without_root_privilege  # root, too, is then held to the folder's mode
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        out = subprocess.run([sys.executable, "-m", "asr", "transcribe", str(cathy_clips[0][0]), "--model",
                              str(tiny_model_path), "-o", str(locked)], capture_output=True, text=True, timeout=300,
                             env=env, preexec_fn=without_root_privilege)
    except subprocess.SubprocessError as err:
        pytest.skip(f"cannot give up root's privilege to write in any folder here: {err}")
    assert out.returncode == 2
    assert out.stderr == f"asr: error: --output-dir {locked}: cannot write in it (permission denied)\n"


def test_a_failed_write_is_reported_and_the_batch_goes_on(cli, tiny_model_path, cathy_clips, tmp_path):
    (a, text_a), (b, _), (c, text_c) = cathy_clips[:3]
    (tmp_path / "out" / f"{b.stem}.txt").mkdir(parents=True)  # its output name is taken by a folder
    out = cli("transcribe", a, b, c, "--model", tiny_model_path, "-o", tmp_path / "out")
    assert out.returncode == 1
    assert out.stderr == (f"asr: error: {tmp_path / 'out' / b.stem}.txt: cannot write the transcript of {b} "
                          f"(is a directory)\n")
    assert normalize((tmp_path / "out" / f"{a.stem}.txt").read_text()) == text_a
    assert normalize((tmp_path / "out" / f"{c.stem}.txt").read_text()) == text_c


def test_two_inputs_with_one_output_name_are_refused_before_any_work(cli, tiny_model_path, cathy_clips, tmp_path):
    path, _ = cathy_clips[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sf.write(tmp_path / "a" / "clip.wav", load_audio(path), 16000)
    sf.write(tmp_path / "b" / "clip.flac", load_audio(path), 16000)
    a, b = tmp_path / "a" / "clip.wav", tmp_path / "b" / "clip.flac"
    out = cli("transcribe", a, b, "--model", tiny_model_path, "-o", tmp_path / "out", "-f", "srt")
    assert out.returncode == 2
    assert out.stderr == (f"asr: error: {a} and {b} would both be written to {tmp_path / 'out' / 'clip.srt'}: "
                          f"transcribe them into different --output-dir folders\n")
    assert list((tmp_path / "out").iterdir()) == []
    out = cli("transcribe", a, a, "--model", tiny_model_path, "-o", tmp_path / "out")  # the same file twice: fine
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------- messages
def test_option_errors_are_one_line(cli, tiny_model_path, cathy_clips):
    path, _ = cathy_clips[0]
    from asr.cli_options import cpu_cores
    cores = cpu_cores()
    for value in ("-1", "0", "1000000000", str(4 * cores + 1)):
        out = cli("transcribe", path, "--model", tiny_model_path, "--threads", value)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1] == (f"asr transcribe: error: argument --threads: must be from 1 to "
                                                       f"{4 * cores}, 4 x the {cores} CPU core{'s' * (cores != 1)} here "
                                                       f"(got {value})")
    for options, message in ((["--hotword", "x:abc"], "hotword 'x:abc': the weight after the colon must be a number (WORD[:WEIGHT])"),
                             (["--alpha", "0.5"], "--alpha and --beta weigh a language model: give --lm PATH"),  # no LM of its own
                             (["--no-lm", "--beta", "1"], "--alpha and --beta weigh a language model: give --lm PATH"),
                             (["--beam-size", "0"], "the beam size must be at least 1 (got 0)"),
                             (["--beam-size", "4", "--alpha", "nan"], "alpha must be a finite number (got nan)")):
        out = cli("transcribe", path, "--model", tiny_model_path, *options)
        assert (out.returncode, out.stderr, out.stdout) == (2, f"asr: error: {message}\n", ""), options


def test_alpha_and_beta_help_names_the_model_cards_defaults(cli):
    from asr.beam import bundled_lm
    from asr.checkpoint import load_model
    own = bundled_lm(load_model())
    help_text = " ".join(cli("transcribe", "--help").stdout.split())
    assert "language model weight (default: the model card's with the model's own LM" in help_text
    assert "word insertion bonus (default: the model card's with the model's own LM" in help_text
    assert "asr models" in help_text
    card = " ".join(cli("models").stdout.split())  # where the card's values are shown
    assert f'"alpha": {own["alpha"]}' in card and f'"beta": {own["beta"]}' in card


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc to see torch loading")
def test_ctrl_c_while_torch_loads_exits_130_without_a_traceback(tiny_model_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # Standard input stays open, so the command cannot finish before the signal, wherever it lands.
    proc = subprocess.Popen([sys.executable, "-m", "asr", "transcribe", "-", "--model", str(tiny_model_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while "libtorch" not in open(f"/proc/{proc.pid}/maps").read():  # torch's import has begun
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err == "" and out == ""


# --------------------------------------------------------------------------- start-up
@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["models"], ["transcribe", "--help"],
                                  ["transcribe"], ["transcribe", "x.wav", "--threads", "0"], ["evaluate", "--help"],
                                  ["lm", "build", "--help"], ["serve", "--help"], ["nosuchcommand"]])
def test_help_version_models_and_argument_errors_do_not_load_torch(argv):
    """They answer in a blink: torch (2-5 s, 800 MB) is imported only by the commands that run a model."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "asr", *argv], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode in (0, 2), out.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    assert imported and "asr.cli" in imported
    assert not [m for m in imported if m == "torch" or m.startswith(("torch.", "torchaudio"))]
    if argv == ["models"]:
        assert "M parameters" in out.stdout


# --------------------------------------------------------------------------- file names (issue 23)
def test_a_file_name_that_is_not_utf8_is_transcribed_printed_escaped_and_written(tiny_model_path, cathy_clips, tmp_path):
    """caf\\xe9\\xff.wav is a legal name on Linux: it is transcribed, shown with \\xNN escapes (as
    `ls -b` shows it), its outputs are written under the same bytes, and the batch goes on."""
    (path, text), (path2, text2) = cathy_clips[1], cathy_clips[2]
    odd = tmp_path / os.fsdecode(b"caf\xe9\xff.flac")
    odd.write_bytes(path.read_bytes())
    missing = tmp_path / os.fsdecode(b"gon\xe9.wav")
    shown, shown_missing = f"{tmp_path}/caf\\xe9\\xff.flac", f"{tmp_path}/gon\\xe9.wav"
    out = run_bytes("transcribe", odd, missing, path2, "--model", tiny_model_path, "--no-punctuation")
    assert out.returncode == 1
    assert out.stderr.decode() == f"asr: error: {shown_missing}: no such file\n"
    assert out.stdout.decode() == f"==> {shown} <==\n{text}\n==> {path2} <==\n{text2}\n"
    out = run_bytes("transcribe", odd, path2, "--model", tiny_model_path, "-f", "json")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["file"] for line in out.stdout.decode().splitlines()] == [shown, str(path2)]
    out = run_bytes("transcribe", odd, path2, "--model", tiny_model_path, "-o", tmp_path / "out", "-f", "all",
                    "--no-punctuation")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / os.fsdecode(b"caf\xe9\xff.txt")).read_text().strip() == text
    assert len(os.listdir(os.fsencode(tmp_path / "out"))) == 10


# --------------------------------------------------------------------------- numbers at the edge (issue 23)
RANGE = "must be a finite number from 10 to 10000 ms"
BAD_NUMBERS = [  # (command line, the error that ends it): argparse's usage line, then this one
    (["transcribe", "x.wav", "--stream", "--chunk-ms", "0.01"], f"asr transcribe: error: argument --chunk-ms: {RANGE} (got 0.01)"),
    (["transcribe", "x.wav", "--stream", "--chunk-ms", "nan"], f"asr transcribe: error: argument --chunk-ms: {RANGE} (got nan)"),
    (["transcribe", "x.wav", "--stream", "--chunk-ms", "inf"], f"asr transcribe: error: argument --chunk-ms: {RANGE} (got inf)"),
    (["transcribe", "x.wav", "--chunk-ms", "-100"], f"asr transcribe: error: argument --chunk-ms: {RANGE} (got -100)"),
    (["transcribe", "x.wav", "--chunk-ms", "fast"], "asr transcribe: error: argument --chunk-ms: 'fast' is not a number"),
    (["listen", "--endpoint-silence", "nan"], "asr listen: error: argument --endpoint-silence: must be a finite number (got nan)"),
    (["listen", "--reset-silence", "inf"], "asr listen: error: argument --reset-silence: must be a finite number (got inf)"),
    (["serve", "--max-utterance=-inf"], "asr serve: error: argument --max-utterance: must be a finite number (got -inf)"),
    (["listen", "--energy-threshold", "6"],
     "asr listen: error: argument --energy-threshold: must be a finite number at most 0 dBFS (got 6)"),
    (["serve", "--sample-rate", "1"], "asr serve: error: argument --sample-rate: unsupported sample rate 1 Hz "
                                      "(must be a whole number of Hz from 1000 to 768000)"),
    (["serve", "--sample-rate", "nan"], "asr serve: error: argument --sample-rate: 'nan' is not a whole number of Hz"),
    (["evaluate", "m.tsv", "--limit", "-1"], "asr evaluate: error: argument --limit: must be at least 0 (got -1)"),
    (["evaluate", "m.tsv", "--worst", "-3"], "asr evaluate: error: argument --worst: must be at least 0 (got -3)"),
    (["tune-lm", "m.tsv", "--lm", "x.arpa", "--limit", "-5"], "asr tune-lm: error: argument --limit: must be at least 0 (got -5)"),
    (["tune-lm", "m.tsv", "--lm", "x.arpa", "--alphas", "0,nan"],
     "asr tune-lm: error: argument --alphas: '0,nan' is not a comma-separated list of numbers"),
    (["lm", "build", "t.txt", "-o", "x.arpa", "--prune", "0", "-1"], "asr lm build: error: argument --prune: must be at least 0 (got -1)"),
]


@pytest.mark.parametrize("argv, message", BAD_NUMBERS, ids=[" ".join(a) for a, _ in BAD_NUMBERS])
def test_numbers_at_the_edge_are_one_usage_error(cli, argv, message):
    out = cli(*argv)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1] == message and out.stderr.startswith("usage: ")


def test_more_threads_than_cores_is_allowed_with_a_warning(cli, tiny_model_path, cathy_clips):
    from asr.cli_options import cpu_cores
    path, text = cathy_clips[0]
    cores = cpu_cores()
    out = cli("transcribe", path, "--model", tiny_model_path, "--threads", cores + 1, "--no-punctuation")
    assert out.returncode == 0 and out.stdout.strip() == text
    s = "s" * (cores != 1)
    assert out.stderr == (f"asr: warning: --threads {cores + 1} is more than the {cores} CPU core{s} here: the threads "
                          f"take turns, which makes the model slower, not faster\n")


def test_the_api_refuses_a_chunk_size_that_is_not_a_number_of_samples(tiny_model, cathy_clips):
    from asr import transcribe
    for chunk_ms in (0.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^chunk_ms must be a finite number of milliseconds, one sample or more"):
            transcribe(tiny_model, cathy_clips[0][0], chunk_ms=chunk_ms)


# --------------------------------------------------------------------------- audio read to its end (issue 23)
@pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("sox")), reason="needs ffmpeg and sox (setup.sh --dev)")
def test_piped_mp3_wav_and_flac_on_standard_input_are_transcribed_whole(tiny_model_path, cathy_clips, tmp_path):
    """`ffmpeg -i x -f mp3 - | asr transcribe -` was refused as truncated, `sox ... -t wav - | asr
    transcribe -` too (its 0x7FFFF000 size), and a FLAC from a pipe failed to seek."""
    path, text = cathy_clips[4]
    pcm = subprocess.run(["sox", path, "-t", "raw", "-"], capture_output=True, check=True).stdout
    raw = ["-t", "raw", "-r", "16000", "-e", "signed", "-b", "16", "-c", "1", "-"]
    streams = {  # a stream of unknown length into the writer, so that it cannot know the length either
        "sox wav": subprocess.run(["sox", *raw, "-t", "wav", "-"], input=pcm, capture_output=True, check=True).stdout,
        "ffmpeg flac": subprocess.run(["ffmpeg", "-nostdin", "-f", "s16le", "-ar", "16000", "-ac", "1", "-i", "-", "-f",
                                       "flac", "-"], input=pcm, capture_output=True, check=True).stdout,
        "ffmpeg mp3": subprocess.run(["ffmpeg", "-nostdin", "-i", path, "-b:a", "128k", "-f", "mp3", "-"],
                                     capture_output=True, check=True).stdout,
    }
    for name, data in streams.items():
        out = run_bytes("transcribe", "-", "--model", tiny_model_path, "-f", "json", "--no-punctuation", stdin=data)
        assert out.returncode == 0 and out.stderr == b"", (name, out.stderr)
        result = json.loads(out.stdout)
        assert abs(result["duration"] - sf.info(path).duration) < 0.2, name  # MP3: + the encoder's delay
        if name != "ffmpeg mp3":  # lossless
            assert result["text"] == text, name


def test_a_file_with_an_absurd_sample_rate_is_one_line_and_the_batch_goes_on(tiny_model_path, cathy_clips, tmp_path):
    """A 105 KB WAV whose header says 1 Hz was 14.6 h of audio after resampling (still running after 60 s)."""
    from test_audio import with_rate
    (path, text), (path2, text2) = cathy_clips[0], cathy_clips[1]
    sf.write(tmp_path / "ok.wav", load_audio(path), 16000, subtype="PCM_16")
    bad = tmp_path / "one-hertz.wav"
    bad.write_bytes(with_rate((tmp_path / "ok.wav").read_bytes(), 1))
    t0 = time.monotonic()
    out = run_bytes("transcribe", bad, path2, "--model", tiny_model_path, "--no-punctuation", timeout=120)
    assert time.monotonic() - t0 < 60
    assert out.returncode == 1
    assert out.stderr.decode() == (f"asr: error: {bad}: unsupported sample rate 1 Hz (must be a whole number of Hz "
                                   f"from 1000 to 768000)\n")
    assert out.stdout.decode() == f"==> {path2} <==\n{text2}\n"
