"""Text fields: NFC, and no control or Bidi_Control characters (other than newline and tab)."""

from __future__ import annotations

import unicodedata

import pytest

from shared.sanitize import BIDI_CONTROL, clean_text

# The Unicode Bidi_Control property (PropList.txt): ALM, LRM, RLM, LRE..RLO, LRI..PDI.
UNICODE_BIDI_CONTROL = (
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def test_nfc() -> None:
    assert clean_text("e\u0301") == "\u00e9"
    assert clean_text("\u212b") == "\u00c5"  # ANGSTROM SIGN -> A WITH RING ABOVE


@pytest.mark.parametrize(
    "char", [chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]],
    ids=lambda char: f"U+{ord(char):04X}",
)
def test_c0_c1_and_del_are_stripped(char: str) -> None:
    assert clean_text(f"a{char}b") == "ab"


def test_newline_and_tab_stay() -> None:
    assert clean_text("line one\n\tline two") == "line one\n\tline two"


def test_carriage_return_goes() -> None:
    assert clean_text("a\r\nb") == "a\nb"


def test_module_lists_the_whole_bidi_control_set() -> None:
    assert set(BIDI_CONTROL) == set(UNICODE_BIDI_CONTROL)


@pytest.mark.parametrize(
    "char", list(UNICODE_BIDI_CONTROL), ids=lambda char: f"U+{ord(char):04X}"
)
def test_each_bidi_control_is_stripped(char: str) -> None:
    assert clean_text(f"safe{char}txt.exe") == "safetxt.exe"


@pytest.mark.parametrize(
    "text",
    [
        "hello, world",
        "caf\u00e9 na\u00efve \u00fcber",
        "\u4e2d\u6587 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea",
        "\U0001f600\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467",
        "\U0001f1eb\U0001f1f7 flags",
        "zero\u200bwidth space and ZWJ/ZWNJ \u200c\u200d stay",
        "",
        "   ",
    ],
)
def test_ordinary_text_and_emoji_are_untouched(text: str) -> None:
    assert clean_text(text) == text


@pytest.mark.parametrize("between", ["\u200e", "\x00", "\u202e"])
def test_result_is_nfc_even_when_a_stripped_char_split_a_sequence(between: str) -> None:
    cleaned = clean_text(f"e{between}\u0301")

    assert unicodedata.is_normalized("NFC", cleaned)
    assert cleaned == "\u00e9"
