"""When to draw progress bars: the one rule every step follows."""

from __future__ import annotations

import sys
from typing import IO


def progress_enabled(flag: bool | None, stream: IO | None = None) -> bool:
    """``--progress``/``--no-progress`` (True/False) decide; unset (None), bars are drawn only when
    stderr is a terminal: a redirected log would otherwise fill with carriage returns."""
    if flag is not None:
        return bool(flag)
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
