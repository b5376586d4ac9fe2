"""The one text normaliser, and the character vocabulary."""
import pytest

from asr.text import VOCAB, decode, encode, normalize


@pytest.mark.parametrize("raw,expected", [
    ("Author of the danger trail, Philip Steels, etc.", "author of the danger trail philip steels etc"),
    ("God bless 'em, I hope I'll go on seeing them forever.", "god bless 'em i hope i'll go on seeing them forever"),
    ("'Hello,' she said.", "hello she said"),
    ("It costs $5.50 -- 10% off!", "it costs five dollars and fifty cents ten percent off"),
    ("Born in 1908, on the 3rd of May.", "born in nineteen oh eight on the third of may"),
    ("Agent 007 ran 1,500 miles", "agent zero zero seven ran one thousand five hundred miles"),
    ("Café  naïve\tco-operate", "cafe naive co operate"),
    ("Smith’s “quoted” words", "smith's quoted words"),
    ("...!?", ""),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_normalize_is_idempotent_and_in_vocabulary():
    text = normalize("The Quick, brown fox's 2 jumps & 3rd leap — 100% ÉTÉ")
    assert normalize(text) == text
    assert set(text) <= set(VOCAB[1:])
    assert decode(encode(text)) == text


def test_encode_refuses_unnormalised_text():
    with pytest.raises(ValueError, match="normalise"):
        encode("Hello")
