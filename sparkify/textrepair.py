"""Repair of double-encoded UTF-8 ("mojibake") in event text.

The event logs hold names whose UTF-8 bytes were decoded as Latin-1 and encoded to UTF-8
again, twice: 'Björk' arrives as 'BjÃƒÂ¶rk'. Undoing one layer is encoding to Latin-1 and
decoding as UTF-8; a correct name fails that step (its Latin-1 bytes are not valid UTF-8),
so it is left as it is.
"""

from __future__ import annotations

MAX_LAYERS = 3


def repair_mojibake(text: str) -> str:
    """The text with every layer of UTF-8-read-as-Latin-1 undone; unchanged if there is none."""
    current = text
    for _ in range(MAX_LAYERS):
        try:
            candidate = current.encode("latin-1").decode("utf-8")
        except UnicodeError:
            break
        if candidate == current:
            break
        current = candidate
    return current


def repairs(values) -> list[tuple[str, str]]:
    """(original, repaired) for each value that changes under repair."""
    found = []
    for value in values:
        if value is None:
            continue
        fixed = repair_mojibake(value)
        if fixed != value:
            found.append((value, fixed))
    return found
