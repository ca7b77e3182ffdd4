"""Reading log lines back: the inverse of shared.logs.escape_value."""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"%(?:u([0-9A-F]{4})|([0-9A-F]{2}))")


def decode_value(text: str) -> str:
    """The original text of a value that `escape_value` encoded.

    Raises:
        ValueError: a "%" that does not start an escape (the text was not encoded there).
    """
    if text.count("%") != len(_ESCAPE.findall(text)):
        raise ValueError(f"not an escaped log value: {text!r}")
    return _ESCAPE.sub(lambda match: chr(int(match.group(1) or match.group(2), 16)), text)
