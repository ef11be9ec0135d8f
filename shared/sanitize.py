"""Text sanitising for fields declared text: NFC, then no control or Bidi_Control characters.

Control characters (Unicode Cc) other than ``\\n`` and ``\\t`` and the Bidi_Control set are
removed because they let one user's text rewrite how another user's screen reads.
"""

from __future__ import annotations

import re
import unicodedata

BIDI_CONTROL = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_STRIP = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f" + BIDI_CONTROL + "]"
)


def clean_text(text: str) -> str:
    """NFC-normalise and strip Cc (except newline and tab) and Bidi_Control characters.

    ASCII text is already in NFC and holds no Bidi_Control character."""
    if text.isascii():
        return _STRIP.sub("", text)
    return unicodedata.normalize("NFC", _STRIP.sub("", text))
