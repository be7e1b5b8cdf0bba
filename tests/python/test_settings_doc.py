"""docs/settings.md lists exactly the settings the code accepts, with the code's defaults."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

from seqalignatac.models.stage2.api import annotate_full
from seqalignatac.models.stage2.options import FILE_SETTINGS
from seqalignatac.models.stage2.train import GDAConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def _table_rows(section: str) -> dict[str, str]:
    text = DOC.read_text()
    start = text.index(f"## `[{section}]`")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end > 0 else len(text)]
    return dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", body, flags=re.MULTILINE))


def test_annotate_section_lists_every_setting_with_its_default():
    rows = _table_rows("annotate")
    assert set(rows) == set(FILE_SETTINGS)
    keywords = {k: p.default for k, p in inspect.signature(annotate_full).parameters.items()}
    config = GDAConfig().to_dict()
    for key, default in rows.items():
        documented = tomllib.loads(f"v = {default}")["v"]
        assert documented == (config[key] if key in config else keywords[key]), key


def test_annotate_help_lists_at_most_fifteen_options():
    from click.testing import CliRunner

    from seqalignatac.cli.main import cli

    res = CliRunner().invoke(cli, ["annotate", "--help"])
    options = [line for line in res.output.splitlines() if line.startswith("  -")]
    assert len(options) <= 15, options
    assert any("--config" in line for line in options) and any("--labels-key" in line for line in options)
