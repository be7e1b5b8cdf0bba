"""`train --config`: the [train] table is documented key for key, its values are checked like
options (one line naming the file, [train] and the key), and they reach the step."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import tomllib
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from cli_helpers import assert_one_line_error
from click.testing import CliRunner

from seqalignatac.cli.main import cli
from seqalignatac.io.settings import read_settings
from seqalignatac.models.stage1 import lsi
from seqalignatac.models.stage1.config import TrainConfig
from seqalignatac.models.stage1.options import TRAIN_SETTINGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _train_section() -> str:
    """The `## [train]` section of docs/settings.md."""
    text = (DOCS / "settings.md").read_text()
    assert "## `[train]`" in text, "docs/settings.md has no '## `[train]`' section"
    return re.split(r"^## ", text.split("## `[train]`", 1)[1], flags=re.MULTILINE)[0]


def _documented() -> dict[str, str]:
    """key -> default column of the section's table."""
    rows = {}
    for line in _train_section().splitlines():
        m = re.match(r"\|\s*`([a-z_0-9]+)`\s*\|\s*([^|]+?)\s*\|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def _code_defaults() -> dict:
    """The default of every [train] key, from the code that applies it."""
    from seqalignatac.models.stage1.trainer import train

    out = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for fn in (train, lsi):
        out |= {
            n: p.default
            for n, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
    return out


def test_every_train_setting_is_documented_and_every_documented_key_exists():
    documented = _documented()
    assert set(documented) == set(TRAIN_SETTINGS), (
        f"undocumented: {sorted(set(TRAIN_SETTINGS) - set(documented))}; "
        f"documented but not accepted: {sorted(set(documented) - set(TRAIN_SETTINGS))}"
    )


def test_documented_defaults_are_the_code_defaults():
    code = _code_defaults()
    for key, shown in _documented().items():
        if shown == "auto":
            assert code[key] is None, key
            continue
        value = tomllib.loads(f"v = {shown.strip('`')}")["v"]
        expected = code[key]
        assert (list(expected) if isinstance(expected, tuple) else expected) == value, (key, shown, expected)


def test_read_settings_converts_toml_values(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        "[train]\nhidden = [64, 16]\nbetas = [0.9, 0.99]\nlr = 1\nresume = true\n"
        'lsi_fit_on = "reference"\n[annotate]\nk = 3\n'
    )
    got = read_settings(path, "train", TRAIN_SETTINGS)
    assert got == {"hidden": (64, 16), "betas": (0.9, 0.99), "lr": 1.0, "resume": True, "lsi_fit_on": "reference"}
    path.write_text("[train]\nhidden = []\n")
    assert read_settings(path, "train", TRAIN_SETTINGS) == {"hidden": ()}


REQUIRED = ["train", "--accessibility", "acc.h5ad", "--outdir"]


@pytest.mark.parametrize(
    "line, key, needle",
    [
        ("lr = nan", "lr", "not a finite number"),
        ("dropout = 0.95", "dropout", "0.95"),
        ("hidden = [0]", "hidden", "widths must be integers >= 1"),
        ("hidden = 2.5", "hidden", "widths"),
        ("betas = [0.9]", "betas", "two numbers"),
        ('activation = "tanh"', "activation", "tanh"),
        ('missing_embeddings = "skip"', "missing_embeddings", "skip"),
        ("resume = 3", "resume", "3"),
        ("lsi_components = 0", "lsi_components", "x>=1"),
        ("lsi_depth_corr_cutoff = 0", "lsi_depth_corr_cutoff", "0"),
        ('lsi_tfidf = "tfidf"', "lsi_tfidf", "tfidf"),
    ],
)
def test_bad_value_is_one_line_naming_file_table_and_key(tmp_path, line, key, needle):
    path = tmp_path / "settings.toml"
    path.write_text(f"[train]\n{line}\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, [*REQUIRED, str(out), "--method", "lsi", "--config", str(path)])
    assert_one_line_error(res, str(path), f"[train] {key} = ", needle)
    assert not out.exists()


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[train]\nn_components = 20\n")
    res = CliRunner().invoke(cli, [*REQUIRED, str(tmp_path / "out"), "--config", str(path)])
    line = assert_one_line_error(res, str(path), "[train] has no setting 'n_components'", "lsi_components")
    assert "min_peak_frac" not in line  # removed: peak selection before the SVD measured no gain


def test_removed_options_are_not_options_any_more(tmp_path):
    res = CliRunner().invoke(cli, [*REQUIRED, str(tmp_path / "out"), "--lsi-components", "5"])
    assert res.exit_code == 2 and "No such option" in res.output


def test_help_lists_at_most_twelve_options():
    res = CliRunner().invoke(cli, ["train", "--help"])
    options = [line for line in res.output.splitlines() if line.startswith("  -")]
    assert len(options) <= 12, options
    assert any("--config" in line for line in options) and any("--patience" in line for line in options)


@pytest.fixture
def acc_file(tmp_path):
    rng = np.random.default_rng(0)
    n, p = 120, 60
    typ = rng.integers(0, 2, n)
    prob = np.where((np.arange(p)[None, :] % 2) == typ[:, None], 0.3, 0.05)
    a = ad.AnnData(
        sp.csr_matrix((rng.random((n, p)) < prob).astype(np.float32)),
        obs=pd.DataFrame({"domain": ["reference"] * 80 + ["query"] * 40}, index=[f"c{i}" for i in range(n)]),
    )
    a.uns["seqalignatac"] = {"prepare": {}}
    path = tmp_path / "acc.h5ad"
    a.write_h5ad(path)
    return a, path


def test_lsi_settings_reach_lsi_and_nt_settings_are_ignored_with_a_warning(acc_file, tmp_path, caplog):
    a, path = acc_file
    cfg = tmp_path / "s.toml"
    cfg.write_text('[train]\nlsi_components = 6\nlsi_normalize = "none"\nlsi_depth_corr_cutoff = 1.0\nhidden = [8]\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--accessibility",
            str(path),
            "--outdir",
            str(out),
            "--method",
            "lsi",
            "--config",
            str(cfg),
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["lsi_components"] == 6 and summary["dims"] == 6 and summary["lsi_normalize"] == "none"
    direct, _ = lsi(a, lsi_components=6, lsi_normalize="none", lsi_depth_corr_cutoff=1.0, seed=3)
    np.testing.assert_array_equal(
        ad.read_h5ad(out / "cell_embeddings.h5ad").obsm["X_seqalignatac"], direct.obsm["X_seqalignatac"]
    )
    assert any("hidden not used by --method lsi" in r.getMessage() for r in caplog.records)


def test_later_settings_files_override_earlier_ones_key_by_key(tmp_path):
    from seqalignatac.io.settings import read_settings

    first, second = tmp_path / "module.toml", tmp_path / "user.toml"
    first.write_text('[train]\nmissing_embeddings = "drop"\nlr = 0.005\n')
    second.write_text("[train]\nlr = 0.002\n")
    got = read_settings([first, second], "train", TRAIN_SETTINGS)
    assert got == {"missing_embeddings": "drop", "lr": 0.002}


@pytest.mark.parametrize(
    "text, needle",
    [("[train\nlr = 0.1\n", "not valid TOML"), ("train = 3\n", "[train] must be a table")],
)
def test_a_broken_settings_file_is_one_line_naming_it(tmp_path, text, needle):
    from cli_helpers import assert_one_line_error

    bad = tmp_path / "broken.toml"
    bad.write_text(text)
    res = CliRunner().invoke(cli, [*REQUIRED, str(tmp_path / "out"), "--config", str(bad)])
    assert_one_line_error(res, str(bad), needle)
    assert not (tmp_path / "out").exists()
