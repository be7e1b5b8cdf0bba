"""CSV/TSV cells that a spreadsheet would run as a formula (``=cmd|...``, ``+``, ``-``, ``@``, tab, CR).

Labels and cell ids come from the user's files and end up in ``predictions.csv``, ``per_class.csv``
and ``confusion_matrix.csv``.  Text cells starting with a formula character get a leading ``'``
(OWASP's advice; spreadsheets show the text, do not evaluate it).  Numbers (``-0.5``, ``+3``) are
left alone, and so are numeric columns.  The escape is reversible: :func:`restore_formulas`
gives back the exact labels, so ``evaluate`` and ``report`` read what ``annotate`` meant.
"""

from __future__ import annotations

from typing import TypeVar

import pandas as pd

T = TypeVar("T")

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def runs_as_formula(value: object) -> bool:
    """True for a text cell that a spreadsheet would evaluate."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return False
    # A plain signed number is data, not a formula; quoting it would turn it into text.
    return not (value[0] in "+-" and _is_number(value))


def needs_quote(value: object) -> bool:
    """True when :func:`quote` adds a quote: a formula, or a formula we already quoted (kept reversible)."""
    return isinstance(value, str) and runs_as_formula(value.lstrip(QUOTE))


def quote(value: T) -> T | str:
    # needs_quote is only ever true for a str; the isinstance says so to the type checker
    return QUOTE + value if isinstance(value, str) and needs_quote(value) else value


def unquote(value: object) -> object:
    if isinstance(value, str) and value.startswith(QUOTE) and needs_quote(value[1:]):
        return value[1:]
    return value


def _map_text(index: pd.Index, fn) -> pd.Index:
    if index.dtype == object or isinstance(index.dtype, (pd.CategoricalDtype, pd.StringDtype)):
        return index.map(fn)
    return index


def _map_frame(df: pd.DataFrame, fn) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if s.dtype == object or isinstance(s.dtype, pd.StringDtype):
            out[col] = s.map(fn)
        elif isinstance(s.dtype, pd.CategoricalDtype) and s.cat.categories.dtype == object:
            out[col] = s.cat.rename_categories(lambda c: fn(c))
    out.index = _map_text(out.index, fn)
    out.columns = _map_text(out.columns, fn)
    return out


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells, index and header cannot run as spreadsheet formulas."""
    return _map_frame(df, quote)


def restore_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Undo :func:`neutralise_formulas` on a table read back from disk."""
    return _map_frame(df, unquote)
