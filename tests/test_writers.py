"""Subtitles that read well, checked with the subtitle parsers players use (srt, webvtt-py):
segments cut where speech pauses and sentences end, word cues that last until the next word,
and whisper's --max-line-width, --max-line-count and --max-words-per-line."""
import io

import pytest
import srt
import webvtt

from asr.decoding import Result, Word, segments_from_words
from asr.writers import to_srt, to_tsv, to_vtt


def words_of(text: str, start: float = 0.0, pauses: dict | None = None, word_s: float = 0.3, gap: float = 0.05):
    """Timed words of text: each word_s long, gap apart, with longer pauses after the words named."""
    out, t = [], start
    for i, w in enumerate(text.split()):
        out.append(Word(w, round(t, 3), round(t + word_s, 3)))
        t += word_s + (pauses or {}).get(i, gap)
    return out


def parse_srt(text: str):
    return list(srt.parse(text))


def parse_vtt(text: str):
    return list(webvtt.from_buffer(io.StringIO(text)).captions)


def vtt_seconds(stamp: str) -> float:
    """'00:01.250' or '01:00:01.250' -> seconds."""
    parts = [float(p) for p in stamp.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def test_segments_end_at_sentence_ends():
    words = words_of("The girl faced him. Her eyes shone with sudden fear. Why?")
    assert [s.text for s in segments_from_words(words)] == \
        ["The girl faced him.", "Her eyes shone with sudden fear.", "Why?"]


def test_a_long_stretch_is_cut_at_its_pause_not_where_it_overflows():
    """30 words without a sentence end, 10.9 s: one cut is needed (8 s at most); the speaker paused
    0.5 s (shorter than the 0.8 s that always cuts) after the 13th word: the cut goes there."""
    text = ("author of the danger trail philip steels and a great many other stories besides "
            "which he wrote in the long winter evenings by the fire in his cabin up north")
    words = words_of(text, pauses={12: 0.5})
    segments = segments_from_words(words)
    assert [len(s.words) for s in segments] == [13, 17]
    assert segments[0].text.endswith("stories") and segments[1].text.startswith("besides")
    assert all(s.end - s.start <= 8.0 and len(s.text) <= 84 for s in segments)


def test_a_comma_is_a_better_cut_than_the_middle_of_a_phrase():
    text = ("after a long while of waiting in the cold rain outside the station, the old man "
            "finally turned around and walked slowly back home through the empty streets of the town")
    segments = segments_from_words(words_of(text))
    assert segments[0].text.endswith("station,")


def test_word_cues_last_until_the_next_word_in_srt_and_vtt():
    words = words_of("one two three four", pauses={1: 0.4, 2: 3.0})
    result = Result.from_words(words, 6.0)
    for cues in ([(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in parse_srt(to_srt(result, word_level=True))],
                 [(vtt_seconds(c.start), vtt_seconds(c.end), c.text)
                  for c in parse_vtt(to_vtt(result, word_level=True))]):
        assert [c[2] for c in cues] == ["one", "two", "three", "four"]
        assert cues[0][1] == pytest.approx(words[1].start, abs=1e-3)  # no gap between words: no flicker
        assert cues[1][1] == pytest.approx(words[2].start, abs=1e-3)  # through the short pause
        assert cues[2][1] == pytest.approx(words[2].end + 1.0, abs=1e-3)  # a long pause: held 1 s, not 3
        assert cues[3][1] == pytest.approx(words[3].end, abs=1e-3)


@pytest.mark.parametrize("options, check", [
    ({"max_line_width": 20}, lambda lines: all(len(line) <= 20 for line in lines)),
    ({"max_line_width": 20, "max_line_count": 2}, lambda lines: len(lines) <= 2 and all(len(x) <= 20 for x in lines)),
    ({"max_words_per_line": 3}, lambda lines: all(len(line.split()) <= 3 for line in lines)),
    ({"max_words_per_line": 2, "max_line_count": 1}, lambda lines: len(lines) == 1 and len(lines[0].split()) <= 2),
])
def test_whispers_line_options(options, check):
    text = "The girl faced him, her eyes shining with sudden fear. Author of the danger trail, Philip Steels."
    result = Result.from_words(words_of(text), 7.0)
    srt_cues = parse_srt(to_srt(result, **options))
    vtt_cues = parse_vtt(to_vtt(result, **options))
    for cues in ([c.content.split("\n") for c in srt_cues], [c.text.split("\n") for c in vtt_cues]):
        assert all(check(lines) for lines in cues), cues
        assert " ".join(" ".join(lines) for lines in cues) == text  # every word, in order, once
    times = [(c.start.total_seconds(), c.end.total_seconds()) for c in srt_cues]
    assert all(a < b for a, b in times) and all(b <= c for (_, b), (c, _) in zip(times, times[1:]))
    rows = to_tsv(result, **options).splitlines()[1:]
    assert len(rows) == len(srt_cues) and all("\n" not in r for r in rows)


def test_a_ten_minute_file_reads_as_subtitles():
    """600 s of speech as sentences of 4-30 words with natural pauses: every cue within 8 s and
    84 characters, most end a sentence or a pause, none is a lone word of a longer sentence."""
    import random
    rng = random.Random(7)
    vocab = "the a of and to in he she it was said with his her they on at for from that this".split() + \
        "house river morning evening journey letter window garden mountain station question answer".split()
    words, t = [], 0.0
    while t < 600:
        n = rng.randint(4, 30)
        sentence = [rng.choice(vocab) for _ in range(n)]
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "?" if rng.random() < 0.1 else "."
        for i, w in enumerate(sentence):
            if i and i % 9 == 0 and rng.random() < 0.7:
                sentence[i - 1] += ","
        for i, w in enumerate(sentence):
            dur = 0.15 + 0.05 * len(w.strip(",.?"))
            words.append(Word(w, round(t, 3), round(t + dur, 3)))
            t += dur + (0.35 if w.endswith(",") else rng.uniform(0.02, 0.12))
        t += rng.uniform(0.4, 1.2)
    result = Result.from_words(words, t)
    cues = parse_srt(to_srt(result))
    assert sum(len(c.content.split()) for c in cues) == len(words)
    assert all((c.end - c.start).total_seconds() <= 8.0 and len(c.content) <= 84 for c in cues)
    ends = [c.content.endswith((".", "?", ",")) for c in cues]
    assert sum(ends) / len(ends) > 0.9, sum(ends) / len(ends)
    assert sum(len(c.content.split()) == 1 and not c.content[0].isupper() for c in cues) == 0
