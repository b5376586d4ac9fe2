"""What the public-corpus recipes share: stages with done-markers, lhotse manifests -> our TSV
manifests, cutting segments out of long recordings, and one-line errors.

Each `recipes/<corpus>/prepare.py CORPUS_DIR OUT_DIR` runs in numbered stages (icefall/lhotse
style). A finished stage leaves OUT_DIR/.done/<n>-<name>, so a re-run (after a crash, or to add
a part) skips what is done; --stage/--stop-stage pick stages and --force redoes them. Stage 0
downloads the corpus into CORPUS_DIR and runs only with --download; without it the corpus must
already be there. Our manifests are TSV files `id path seconds speaker text` with absolute audio
paths and text normalised by asr.text.normalize, written by asr.data.write_manifest.

Recipes import `asr` (and this module); `asr` never imports recipes.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import os
import sys
import tarfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import SAMPLE_RATE, AudioError, info, load_audio
from asr.data import ManifestReport, Utterance, write_manifest
from asr.text import normalize

log = logging.getLogger("recipes")


class RecipeError(Exception):
    """A problem the user can fix (a missing corpus, a wrong folder): one line, no traceback."""


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus_dir", type=Path, help="where the corpus is (or is downloaded to, with --download)")
    p.add_argument("out_dir", type=Path, help="where the manifests (and any converted audio) go")
    p.add_argument("--download", action="store_true", help="stage 0: download the corpus first (needs network)")
    p.add_argument("--stage", type=int, default=0, help="first stage to run (default: 0)")
    p.add_argument("--stop-stage", type=int, default=99, help="last stage to run (default: all)")
    p.add_argument("--force", action="store_true", help="redo stages even if their done-marker exists")
    p.add_argument("--jobs", type=int, default=1, help="parallel jobs for scanning / cutting audio")
    return p


def run_main(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a recipe's main with logging set up; a RecipeError (or a missing file) is one line on stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    prog = Path(sys.argv[0]).name if argv is None else "prepare.py"
    try:
        main(argv)
    except (RecipeError, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except AssertionError as err:  # lhotse checks the corpus layout with asserts ("Mismatch: found ...")
        print(f"{prog}: error: {err or 'the corpus is not laid out as expected'}", file=sys.stderr)
        return 1
    return 0


class Stages:
    """Numbered stages with done-markers in OUT_DIR/.done/."""

    def __init__(self, out_dir: Path, first: int = 0, last: int = 99, force: bool = False):
        self.done_dir = Path(out_dir) / ".done"
        self.first, self.last, self.force = first, last, force

    @classmethod
    def from_args(cls, args) -> "Stages":
        return cls(args.out_dir, args.stage, args.stop_stage, args.force)

    def run(self, number: int, name: str, fn: Callable[[], None], enabled: bool = True) -> bool:
        """Run fn as stage `number` unless it is outside --stage/--stop-stage, disabled, or done.
        Returns True if it ran."""
        marker = self.done_dir / f"{number}-{name}"
        if not enabled or not self.first <= number <= self.last:
            return False
        if marker.exists() and not self.force:
            log.info("stage %d (%s): done already (%s)", number, name, marker)
            return False
        log.info("stage %d (%s)", number, name)
        fn()
        self.done_dir.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return True


def locate(corpus_dir: Path, names: Iterable[str], probe: Callable[[Path], bool], what: str,
           download_hint: str = "give --download to fetch it") -> Path:
    """The folder of a corpus: corpus_dir itself or one of its children `names` (the folder a
    download unpacks to), whichever passes probe. RecipeError if none does."""
    for candidate in [corpus_dir] + [corpus_dir / n for n in names]:
        if candidate.is_dir() and probe(candidate):
            return candidate
    raise RecipeError(f"{corpus_dir}: no {what} found there ({download_hint})")


@contextlib.contextmanager
def libsndfile_audio():
    """Make lhotse read audio (SPH included) through libsndfile, as asr does, instead of the
    sph2pipe binary it would otherwise want for .sph files. Child processes inherit it."""
    from lhotse.audio.backend import LibsndfileBackend, get_current_audio_backend, set_current_audio_backend
    previous_env = os.environ.get("LHOTSE_AUDIO_BACKEND")
    previous = get_current_audio_backend()
    os.environ["LHOTSE_AUDIO_BACKEND"] = "LibsndfileBackend"
    set_current_audio_backend(LibsndfileBackend())
    try:
        yield
    finally:
        set_current_audio_backend(previous)
        if previous_env is None:
            os.environ.pop("LHOTSE_AUDIO_BACKEND", None)
        else:
            os.environ["LHOTSE_AUDIO_BACKEND"] = previous_env


def fetch(url: str, target_dir: Path) -> Path:
    """Download an archive into target_dir (resumable, lhotse's downloader) and unpack it there."""
    from lhotse.utils import resumable_download, safe_extract
    target_dir.mkdir(parents=True, exist_ok=True)
    archive = target_dir / url.rsplit("/", 1)[1]
    resumable_download(url, filename=archive)
    with tarfile.open(archive) as tar:
        safe_extract(tar, path=target_dir)
    return archive


# --------------------------------------------------------------------------- lhotse -> our manifests
def load_lhotse(path: Path):
    from lhotse import load_manifest
    if not path.is_file():
        raise RecipeError(f"{path}: no such lhotse manifest (run the earlier stages first)")
    return load_manifest(path)


def whole_file_utterances(recordings, supervisions, report: ManifestReport,
                          text: Callable = lambda sup: sup.text) -> list[Utterance]:
    """Utterances from lhotse supervisions that each cover a whole recording (LibriSpeech,
    Common Voice, LJSpeech): the audio file is used as it is."""
    out = []
    for sup in supervisions:
        rec = recordings[sup.recording_id]
        where = f"{sup.id}"
        if sup.start > 0.01 or abs(sup.duration - rec.duration) > 0.05:
            raise RecipeError(f"{sup.id}: a segment of {rec.id}, not a whole file; use segment_utterances")
        if len(rec.sources) != 1 or rec.sources[0].type != "file":
            report.skip("not a single audio file", where)
            continue
        words = normalize(text(sup) or "")
        if not words:
            report.skip("empty transcript", where)
            continue
        out.append(Utterance(sup.id, str(Path(rec.sources[0].source).resolve()), round(rec.duration, 3), words,
                             sup.speaker or ""))
        report.read += 1
    return sorted(out, key=lambda u: u.id)


def _cut_recording(source: str, segments: list[tuple[str, float, float, str, str]], audio_dir: str):
    """Cut one recording's segments to 16 kHz FLAC files. -> ([Utterance], [(id, reason)])."""
    done, failed = [], []
    try:
        x = load_audio(source)
    except AudioError as err:
        return done, [(seg[0], f"unreadable audio ({err})") for seg in segments]
    folder = Path(audio_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for uid, start, duration, speaker, text in segments:
        a, b = round(start * SAMPLE_RATE), min(len(x), round((start + duration) * SAMPLE_RATE))
        if b - a < SAMPLE_RATE // 100:
            failed.append((uid, "segment outside the recording"))
            continue
        path = folder / f"{uid}.flac"
        if not (path.is_file() and sf.info(path).frames == b - a):  # a re-run keeps finished files
            tmp = path.with_suffix(".tmp.flac")
            sf.write(tmp, np.clip(x[a:b], -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
            os.replace(tmp, path)
        done.append(Utterance(uid, str(path.resolve()), round((b - a) / SAMPLE_RATE, 3), text, speaker))
    return done, failed


def segment_utterances(recordings, supervisions, audio_dir: Path, report: ManifestReport,
                       text: Callable = lambda sup: sup.text, jobs: int = 1) -> list[Utterance]:
    """Utterances from lhotse supervisions that are segments of long recordings (TED-LIUM): each
    segment is cut out once, here, to its own 16 kHz FLAC file under audio_dir/<recording>/,
    so that training reads whole files like every other corpus. Each recording is read once."""
    by_rec: dict[str, list] = defaultdict(list)
    for sup in supervisions:
        words = normalize(text(sup) or "")
        if not words:
            report.skip("empty transcript", sup.id)
            continue
        by_rec[sup.recording_id].append((sup.id, sup.start, sup.duration, sup.speaker or "", words))
    tasks = []
    for rec_id, segs in sorted(by_rec.items()):
        rec = recordings[rec_id]
        tasks.append((rec.sources[0].source, segs, str(audio_dir / rec_id)))
    out = []
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            results = list(ex.map(_cut_recording, *zip(*tasks))) if tasks else []
    else:
        results = [_cut_recording(*t) for t in tasks]
    for done, failed in results:
        out.extend(done)
        report.read += len(done)
        for uid, reason in failed:
            report.skip(reason, uid)
    return sorted(out, key=lambda u: u.id)


def checked(utts: list[Utterance], report: ManifestReport) -> list[Utterance]:
    """The utterances whose audio libsndfile can open (what asr reads at training time); those
    whose duration is not known yet (seconds 0) get it from the header read for the check."""
    out = []
    for u in utts:
        try:
            meta = info(u.path)
            if meta.frames == 0:
                raise AudioError(u.path, "contains no audio")
        except AudioError as err:
            report.skip(f"unreadable audio ({err.reason})", u.id)
            continue
        if not u.seconds:
            u.seconds = round(meta.frames / meta.samplerate, 3)
        out.append(u)
    return out


def write_split(utts: list[Utterance], path: Path) -> None:
    """Write one manifest and say what is in it."""
    write_manifest(utts, path)
    hours = sum(u.seconds for u in utts) / 3600
    speakers = len({u.speaker for u in utts if u.speaker})
    print(f"{path}: {len(utts)} utterances, {hours:.2f} h, {speakers} speakers")


def report_skips(report: ManifestReport, what: str) -> None:
    if report.skipped:
        print(f"{what}: skipped " + ", ".join(f"{n} ({reason})" for reason, n in sorted(report.skipped.items())))


# --------------------------------------------------------------------------- corpora as ../shared/data has them
def read_corpus_manifest(corpus_dir: Path, report: ManifestReport, text: Callable[[str], str] = normalize,
                         what: str = "corpus") -> list[Utterance]:
    """The utterances of a corpus laid out as `manifest.tsv` (header `id path seconds speaker text`,
    CSV quoting, paths relative to the folder) beside its audio: how ../shared/data holds each
    corpus. `text` maps a published transcript to our normalised one ("" skips the row)."""
    path = Path(corpus_dir) / "manifest.tsv"
    if not path.is_file():
        raise RecipeError(f"{path}: no such file (is {corpus_dir} the {what} folder?)")
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"id", "path", "text"} - set(reader.fieldnames or [])
        if missing:
            raise RecipeError(f"{path}: the header lacks column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, 2):
            where = f"{path}:{line}"
            words = text(row["text"] or "")
            if not words:
                report.skip("empty or unusable transcript", where)
                continue
            audio = (Path(corpus_dir) / row["path"]).resolve()
            if not audio.is_file():
                report.skip("audio file missing", f"{where} ({audio})")
                continue
            try:
                seconds = float(row.get("seconds") or 0)
            except ValueError:
                seconds = 0.0
            if not seconds > 0:
                try:
                    meta = info(str(audio))
                    seconds = meta.frames / meta.samplerate
                except AudioError as err:
                    report.skip(f"unreadable audio ({err.reason})", where)
                    continue
            out.append(Utterance(row["id"], str(audio), round(seconds, 3), words, row.get("speaker") or ""))
            report.read += 1
    return out


def pick_dev_speakers(speakers: Iterable[str], n: int, group: Callable[[str], str] = lambda s: "") -> set[str]:
    """n speakers held out for dev, stable (the smallest CRC32 of the name first) and spread evenly
    over the groups `group` puts speakers in (e.g. gender), so a dev set is not all one kind."""
    by_group: dict[str, list[str]] = defaultdict(list)
    for s in sorted(set(speakers), key=lambda s: (zlib.crc32(s.encode()), s)):
        by_group[group(s)].append(s)
    picked: list[str] = []
    queues = [list(v) for _, v in sorted(by_group.items())]
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop(0))
    return set(picked)


def in_share(key: str, fraction: float) -> bool:
    """A stable pseudo-random choice of about `fraction` of keys (CRC32 of the key, per mille)."""
    return zlib.crc32(key.encode()) % 1000 < fraction * 1000


def write_train_dev(utts: list[Utterance], is_dev: Callable[[Utterance], bool], out_dir: Path) -> None:
    """Write OUT_DIR/train.tsv and OUT_DIR/dev.tsv, dev holding the utterances is_dev picks."""
    write_split([u for u in utts if not is_dev(u)], Path(out_dir) / "train.tsv")
    write_split([u for u in utts if is_dev(u)], Path(out_dir) / "dev.tsv")


def prepare_manifest_corpus(args, what: str, is_dev: Callable[[Utterance], bool],
                            text: Callable[[str], str] = normalize) -> None:
    """The whole preparation of a corpus in ../shared/data's layout: read, split, write, report."""
    report = ManifestReport()
    utts = read_corpus_manifest(args.corpus_dir, report, text, what)
    write_train_dev(utts, is_dev, args.out_dir)
    report_skips(report, what)
