"""The one cleaner for untrusted text, whatever surface shows it: tool results, resources,
prompts, completions, the user's confirmation questions, error texts, audit and log lines; and
the same for free-form JSON from the API (`clean_json` keeps it whole, `trim_json` caps it).

Text written by OnePin users (names, descriptions, scripts, error messages) can carry characters
a reader never sees but a model reads: Unicode tag characters spelling out a whole hidden
sentence, zero-width characters, variation selectors encoding bytes after an emoji, bidi
controls that reorder what is shown, terminal escapes. `clean_text` removes them:

- controls (Cc) except tab and newline; U+2028/U+2029 (line and paragraph separators) become a
  newline, which is what they mean;
- every format character (Cf): bidi controls, tags (U+E0000..E007F), zero-width space and
  non-joiner, word joiner, BOM, soft hyphen, U+180E, invisible operators, interlinear
  annotation. ZWNJ goes too, though Persian and Indic typography use it: the words stay
  readable without it, and it is a classic hiding place;
- the zero-width joiner, except between two emoji (woman, ZWJ, laptop: the woman technologist):
  an emoji ZWJ sequence keeps its meaning, a joiner anywhere else is invisible;
- variation selectors (U+FE00..FE0F, U+E0100..E01EF, Mongolian U+180B..180D, U+180F), except
  VS15/VS16 directly after an emoji (a red heart, U+2764 VS16) and VS16 in a keycap (digit,
  VS16, U+20E3). Ideographic variation sequences (a CJK ideograph followed by U+E0100…) lose
  their selector: the base character still reads the same;
- Hangul fillers (U+115F, U+1160, U+3164, U+FFA0), the combining grapheme joiner, the Khmer
  inherent vowels, and the code points Unicode reserves for future default-ignorable characters
  (U+2065, U+FFF0..FFF8, U+E0000..E0FFF): whatever is assigned there later will be invisible too;
- lone surrogates (Cs), which a JSON decoder produces from `"\\ud800"` and which cannot be
  encoded as UTF-8 at all.

Emoji tag sequences (the flags of England, Scotland and Wales) are the one legitimate use of tag
characters; they are dropped all the same, so such a flag shows as a plain black flag
(U+1F3F4). A tag that is kept is a channel for hidden text, a degraded flag is cosmetic.

Kept: every visible character, private-use characters (Co: an icon font's glyphs are visible),
and unassigned code points (Cn) outside the reserved ranges above, so that emoji and scripts
added after this Python's Unicode database come through. The text is NFC-normalized (an accent
typed as a combining mark reads as the composed letter) and capped with an ellipsis.

This module is the lowest layer of the package and imports nothing from it, so that views,
failures, audit and the command line's log filter can all share it.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Final

MAX_TEXT_CHARS: Final = 2000
MAX_NAME_CHARS: Final = 200

ZWJ: Final = "\u200d"
VS15: Final = "\ufe0e"  # text presentation
VS16: Final = "\ufe0f"  # emoji presentation
KEYCAP: Final = "\u20e3"  # combining enclosing keycap: a keycap one is "1", VS16, U+20E3
KEYCAP_BASES: Final = frozenset("0123456789#*")
SKIN_TONES: Final = range(0x1F3FB, 0x1F400)  # emoji modifiers, between an emoji and a ZWJ
ELLIPSIS: Final = "…"

# Where emoji live: a superset of the Extended_Pictographic property (UTS #51), block by block.
# Python's unicodedata has no emoji property; a few blocks are taken whole, which is enough for
# the only decision this feeds (keep one joiner or one selector after a visible symbol, never a
# run of invisible characters). Unassigned code points in the emoji planes count, as they do in
# Extended_Pictographic, so that emoji newer than this Python's Unicode database keep their
# sequences.
_PICTOGRAPHIC_RANGES: Final = (
    (0x00A9, 0x00A9),  # ©
    (0x00AE, 0x00AE),  # ®
    (0x203C, 0x203C),  # ‼
    (0x2049, 0x2049),  # ⁉
    (0x2122, 0x2122),  # ™
    (0x2139, 0x2139),  # information source
    (0x2194, 0x21AA),  # ↔ … ↪ (arrows with emoji forms)
    (0x2300, 0x23FF),  # Miscellaneous Technical: ⌚ ⌛ ⏩ ⏰ …
    (0x24C2, 0x24C2),  # Ⓜ
    (0x25A0, 0x27BF),  # Geometric Shapes, Miscellaneous Symbols, Dingbats: ▶ ☀ ❤ ✅ …
    (0x2934, 0x2935),  # ⤴ ⤵
    (0x2B05, 0x2B55),  # ⬅ ⬛ ⭐ ⭕
    (0x3030, 0x3030),  # 〰
    (0x303D, 0x303D),  # 〽
    (0x3297, 0x3297),  # ㊗
    (0x3299, 0x3299),  # ㊙
    (0x1F000, 0x1F1E5),  # Mahjong, dominoes, cards, enclosed alphanumerics (not the flags' letters)
    (0x1F200, 0x1F3FA),  # enclosed ideographs, Miscellaneous Symbols and Pictographs (to 🏺)
    (0x1F400, 0x1FAFF),  # the rest of the pictographs, emoticons, transport, supplements
    (0x1FC00, 0x1FFFD),  # reserved for future pictographs
)

# Dropped wherever they appear: controls but tab and newline, line/paragraph separators (turned
# into a newline), every format character but the joiner, surrogates, and the default-ignorable
# characters of other categories (Hangul fillers, selectors but VS15/VS16, and the rest listed in
# the module docstring). VS15, VS16 and the joiner are judged by their neighbours afterwards.
_CONDITIONAL: Final = frozenset((ZWJ, VS15, VS16))
_OTHER_IGNORABLE: Final = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors (and U+180E, a Cf)
    (0x2065, 0x2065),  # reserved, default-ignorable
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors 1..16
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # reserved, default-ignorable
    (0xE0000, 0xE0FFF),  # tags, variation selectors 17..256, reserved, default-ignorable
)


def _char_class(ranges: list[tuple[int, int]]) -> str:
    return "".join(
        re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
        for low, high in ranges
    )


def _merged(points: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for point in sorted(set(points)):
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    return ranges


# Format characters are assigned in planes 0, 1 and 14 only (plane 14 is dropped whole above;
# planes 2 and 3 hold ideographs, 15 and 16 private use), so scanning the first two planes finds
# them all in about ten milliseconds, where the whole code space would take a tenth of a second.
# The scan runs on first use rather than at import, to keep it off the server's cold start
# (nothing before the first tool result cleans non-ASCII text). tests/test_text.py checks every
# format character of all seventeen planes.
_SCANNED_PLANES_END: Final = 0x20000
# What the scan finds below U+0080: the C0 controls but tab and newline, and DEL (ASCII has no
# format characters or surrogates). Log lines are ASCII as a rule, and the first of them is
# written before the server answers anything: with this they never wait for the scan.
_ASCII_DROPPABLE: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


@functools.cache
def _droppable() -> re.Pattern[str]:
    # Built from this Python's Unicode database, so that every format character it knows is
    # covered, not a hand-kept list.
    points = [
        cp
        for cp in range(_SCANNED_PLANES_END)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Cs") and chr(cp) not in "\t\n"
    ]
    for low, high in _OTHER_IGNORABLE:
        points.extend(range(low, high + 1))
    points = [cp for cp in points if chr(cp) not in _CONDITIONAL]
    return re.compile(f"[{_char_class(_merged(points))}]")


_SEPARATORS: Final = re.compile("[\u2028\u2029]")
_CONDITIONAL_PATTERN: Final = re.compile("[\u200d\ufe0e\ufe0f]")
_PICTOGRAPHIC: Final = re.compile(f"[{_char_class(list(_PICTOGRAPHIC_RANGES))}]")


def clean_text(value: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Untrusted text made safe to show a model or a person: nothing invisible but joiners and
    selectors inside emoji, NFC, at most `limit` characters (a cut one ends with "…")."""
    text = _strip(value)
    if not text.isascii():
        # After stripping: removing a zero-width space between a letter and its accent must
        # still give the composed letter, so that cleaning twice changes nothing.
        text = unicodedata.normalize("NFC", text)
    if len(text) > limit:
        # The cut may leave a joiner or a keycap's selector without its partner: judged again.
        text = _judge_conditional(text[: limit - 1].rstrip() + ELLIPSIS)
    return text


def clean_line(value: str, limit: int = sys.maxsize) -> str:
    """`clean_text` for a surface that is one line (a log record): line breaks and tabs become
    spaces, so that API text can't start what looks like a record of its own."""
    return clean_text(value, limit).replace("\n", " ").replace("\t", " ")


def is_pictographic(char: str) -> bool:
    """Whether `char` is an emoji base (in the Extended_Pictographic blocks above)."""
    return _PICTOGRAPHIC.fullmatch(char) is not None


def _strip(value: str) -> str:
    if value.isascii():
        # The common case, and only controls can hide in ASCII.
        return _ASCII_DROPPABLE.sub("", value)
    text = _SEPARATORS.sub("\n", _droppable().sub("", value))
    return _judge_conditional(text)


def _judge_conditional(text: str) -> str:
    """Keep a joiner between two emoji and a VS15/VS16 right after one (or VS16 in a keycap);
    drop every other joiner and selector. Decided on the text with everything else already
    removed, so a zero-width space slipped into an emoji sequence doesn't break it."""
    if not _CONDITIONAL_PATTERN.search(text):
        return text

    def keep_or_drop(match: re.Match[str]) -> str:
        char, at = match.group(), match.start()
        before = text[at - 1] if at > 0 else ""
        after = text[at + 1] if at + 1 < len(text) else ""
        if char == ZWJ:
            return char if _emoji_ends_at(text, at - 1) and is_pictographic(after) else ""
        if before and is_pictographic(before):
            return char
        keycap = char == VS16 and before in KEYCAP_BASES and after == KEYCAP
        return char if keycap else ""

    return _CONDITIONAL_PATTERN.sub(keep_or_drop, text)


def _emoji_ends_at(text: str, end: int) -> bool:
    """Whether an emoji, with an optional skin tone or VS16, ends at index `end`."""
    if end >= 0 and text[end] == VS16:
        end -= 1
    if end >= 0 and ord(text[end]) in SKIN_TONES:
        end -= 1
    return end >= 0 and is_pictographic(text[end])


# --- JSON: free-form API objects, cleaned string by string -------------------------------------


def map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """A JSON value with `change` applied to every string in it, object keys included."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {change(str(key)): map_strings(v, change) for key, v in value.items()}
    if isinstance(value, list):
        return [map_strings(item, change) for item in value]
    return value


def clean_json(value: Any) -> Any:
    """A JSON value with every string (keys too) through the one text cleaner, uncapped."""
    return map_strings(value, lambda text: clean_text(text, limit=sys.maxsize))


def trim_json(
    value: Any, *, max_text: int = MAX_TEXT_CHARS, max_items: int | None = None, max_depth: int = 12
) -> tuple[Any, bool]:
    """A JSON value with every string (keys too) cleaned and capped, lists capped at `max_items`
    and nesting cut at `max_depth`; and whether anything was cut."""
    trimmer = _Trimmer(max_text, max_items, max_depth)
    return trimmer.trim(value, 0), trimmer.cut


class _Trimmer:
    def __init__(self, max_text: int, max_items: int | None, max_depth: int) -> None:
        self.max_text = max_text
        self.max_items = max_items
        self.max_depth = max_depth
        self.cut = False

    def trim(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            cleaned = clean_text(value, self.max_text)
            self.cut |= len(value) > self.max_text
            return cleaned
        if not isinstance(value, Mapping | list | tuple):
            return value  # numbers, booleans, None
        if depth >= self.max_depth:
            self.cut = True
            return "…"
        if isinstance(value, Mapping):
            return {
                clean_text(str(key), MAX_NAME_CHARS): self.trim(item, depth + 1)
                for key, item in value.items()
            }
        items = list(value)
        if self.max_items is not None and len(items) > self.max_items:
            self.cut = True
            items = items[: self.max_items]
        return [self.trim(item, depth + 1) for item in items]
