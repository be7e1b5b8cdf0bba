"""Issue 14, classes 4 and 8: every numeric option is range-checked at parse time (a usage error, exit 2,
naming the option, nothing written), the Python API refuses the same values with the same message,
`run`'s per-step options are checked before any step starts, and names that become paths are confined."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_one_line_error
from click.testing import CliRunner

from seqalignatac.cli.main import cli
from seqalignatac.errors import InputError

OUT = "OUT"  # replaced by a fresh folder that must still be absent afterwards

# command -> the options it needs to get as far as its own parsing
REQUIRED = {
    "prepare": ["--reference", "r.h5ad", "--query", "q.h5ad", "--labels-key", "cell_type", "--outdir", OUT],
    "train": ["--accessibility", "acc.h5ad", "--outdir", OUT],
    "annotate": ["--cells", "cells.h5ad", "--outdir", OUT],
    "embed": ["--fasta", "peaks.fa", "--model", "kmer", "--out", OUT],
    "simulate": ["--outdir", OUT],
    "report": ["--prepare-dir", "p", "--train-dir", "t", "--annotate-dir", "a", "--outdir", OUT],
    "run": ["--samplesheet", "sheet.csv", "--outdir", OUT, "--model", "kmer"],
    "demo": ["--outdir", OUT],
    "nt-tiny": ["--outdir", OUT],
}

BAD_VALUES = [
    # prepare
    ("prepare", "--overlap-width", "1"),
    ("prepare", "--overlap-width", "-500"),
    ("prepare", "--min-peak-frac", "nan"),
    ("prepare", "--min-peak-frac", "1"),
    ("prepare", "--min-peak-frac", "-0.1"),
    ("prepare", "--min-cells", "-1"),
    ("prepare", "--max-sequence-peaks", "0"),
    ("prepare", "--max-sequence-peaks", "2.5"),
    # train
    # (train's other settings are [train] keys of --config: tests/python/test_stage1_settings.py)
    ("train", "--epochs", "0"),
    ("train", "--threads", "0"),
    ("train", "--seed", "-1"),
    ("train", "--device", "gpu"),
    ("train", "--patience", "0"),
    # annotate
    ("annotate", "--threads", "0"),
    ("annotate", "--device", "tpu"),
    ("annotate", "--device", "cuda:x"),
    ("annotate", "--ensemble", "0"),
    ("annotate", "--ensemble", "2.5"),
    ("annotate", "--unknown-quantile", "nan"),
    ("annotate", "--unknown-quantile", "1"),
    ("annotate", "--seed", "-1"),
    # embed
    ("embed", "--batch-size", "0"),
    ("embed", "--threads", "0"),
    ("embed", "--device", "gpu"),
    # simulate
    ("simulate", "--peaks-per-cell", "nan"),
    ("simulate", "--reference-fraction", "inf"),
    ("simulate", "--seed", "-1"),
    ("simulate", "--cells", "0"),
    # report
    ("report", "--max-umap-cells", "0"),
    ("report", "--seed", "-1"),
    # run and demo
    ("run", "--threads", "0"),
    ("run", "--epochs", "0"),
    ("run", "--min-peak-frac", "nan"),
    ("run", "--device", "x"),
    ("run", "--overlap-width", "0"),
    ("run", "--max-sequence-peaks", "0"),
    ("run", "--batch-size", "0"),
    ("run", "--seed", "-2"),
    ("demo", "--cells", "0"),
    ("demo", "--seed", "-1"),
    ("demo", "--device", "metal"),
    ("demo", "--threads", "-4"),
    # nt-tiny
    ("nt-tiny", "--seed", "-1"),
]


def _invoke(tmp_path, command, *extra):
    out = tmp_path / "out"
    args = [str(out) if a == OUT else a for a in REQUIRED[command]]
    return CliRunner().invoke(cli, [command, *args, *extra]), out


@pytest.mark.parametrize("command, option, value", BAD_VALUES)
def test_bad_numeric_option_is_a_usage_error_naming_it(tmp_path, command, option, value):
    res, out = _invoke(tmp_path, command, option, value)
    assert_one_line_error(res, f"'{option}'")
    assert not out.exists()


@pytest.mark.parametrize(
    "command, option, value",
    [
        ("annotate", "--device", "cuda:1"),
        ("annotate", "--device", "CPU"),
        ("train", "--device", "cuda:0"),
        ("annotate", "--ensemble", "1"),
        ("annotate", "--unknown-quantile", "0.05"),
    ],
)
def test_good_values_pass_parsing(tmp_path, command, option, value):
    # They get past parsing and fail later on the missing input file, not on the option.
    res, _ = _invoke(tmp_path, command, option, value)
    assert option not in res.output.strip().splitlines()[-1]


# [annotate] settings of --config: the same ranges as the Python API, the file, table and key named.
BAD_SETTINGS = [
    ("k", "0"),
    ("k", "2.5"),
    ("lr", "nan"),
    ("lr", "0"),
    ("hidden", "0"),
    ("dropout", "1.0"),
    ("epochs", "0"),
    ("alpha", "inf"),
    ("knn_mix", "nan"),
    ("knn_k", "0"),
    ("calibration_fraction", "0.5"),
    ("weight_decay", "-1"),
    ("target_depth", "-1"),
    ("linear_c", "0"),
    ("class_weight", '"focal"'),
    ("knn_method", '"annoy"'),
    ("unknown_smooth", "-1"),
    ("label_smoothing", "0.1"),
    ("ensemble", "2"),
]


@pytest.mark.parametrize("key, value", BAD_SETTINGS)
def test_bad_annotate_setting_in_the_config_file_names_file_and_key(tmp_path, key, value):
    settings = tmp_path / "settings.toml"
    settings.write_text(f"[train]\nepochs = 3\n\n[annotate]\n{key} = {value}\n")
    res, out = _invoke(tmp_path, "annotate", "--config", str(settings))
    assert_one_line_error(
        res, f"[annotate] {key}" if key not in ("label_smoothing", "ensemble") else f"[annotate] has no setting {key!r}"
    )
    assert str(settings) in res.output
    assert not out.exists()


def test_every_numeric_option_has_a_range_type():
    """No command keeps a bare int/float option: each one has a click range or our finite type."""
    import click

    from seqalignatac.cli.main import COMMANDS, LazyGroup

    group = LazyGroup()
    loose = []
    for name in COMMANDS:
        for p in group.get_command(None, name).params:
            if isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType)) and not isinstance(
                p.type, (click.IntRange, click.FloatRange)
            ):
                loose.append(f"{name} {p.opts[0]}")
            if isinstance(p.type, click.FloatRange):
                # click's FloatRange lets NaN through: ours refuses it
                with pytest.raises(click.BadParameter):
                    p.type.convert("nan", p, None)
    assert not loose, loose


# ------------------------------------------------------------------ the same checks in the Python API


@pytest.fixture(scope="module")
def cells():
    import anndata as ad

    rng = np.random.default_rng(0)
    n = 60
    obs = pd.DataFrame(
        {"domain": ["reference"] * 40 + ["query"] * 20, "label": ["a", "b"] * 20 + [None] * 20},
        index=[f"c{i}" for i in range(n)],
    )
    a = ad.AnnData(obs=obs)
    a.obsm["X_seqalignatac"] = rng.normal(size=(n, 8)).astype(np.float32)
    return a


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"config": {"lr": math.nan}}, "invalid value for lr: nan is not a finite number"),
        ({"config": {"k": 0}}, "invalid value for k: 0 is not in the range x>=1"),
        ({"config": {"dropout": 1.5}}, "for dropout"),
        ({"config": {"epochs": 0}}, "for epochs"),
        ({"config": {"hidden": -1}}, "for hidden"),
        ({"threads": 0}, "--threads"),
        ({"device": "gpu"}, "--device: 'gpu' is not a device"),
        ({"knn_k": 0}, "for knn_k"),
        ({"unknown_quantile": math.inf}, "--unknown-quantile"),
    ],
)
def test_annotate_api_refuses_what_the_cli_refuses(cells, kw, needle):
    from seqalignatac.models.stage2.api import annotate_full
    from seqalignatac.models.stage2.options import config_with

    if "config" in kw:
        kw = {"config": config_with(**kw["config"])}
    with pytest.raises(InputError) as e:
        annotate_full(cells, method="knn", progress=False, **kw)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_train_and_lsi_api_refuse_bad_values(cells):
    import anndata as ad
    import scipy.sparse as sp

    from seqalignatac.models.stage1 import lsi, train

    a = ad.AnnData(sp.csr_matrix((np.random.default_rng(0).random((20, 30)) < 0.3).astype(np.uint8)))
    emb = np.zeros((30, 4), dtype=np.float32)
    # Command-line options are named as options, [train] keys as keys.
    for kw, needle in (
        ({"lr": math.nan}, "invalid value for lr:"),
        ({"epochs": 0}, "--epochs"),
        ({"threads": 0}, "--threads"),
        ({"device": "tpu"}, "--device"),
        ({"hidden": (0,)}, "invalid value for hidden:"),
        ({"dropout": 2.0}, "invalid value for dropout:"),
        ({"betas": (0.9, 1.0)}, "invalid value for betas:"),
        ({"checkpoint_minutes": -1}, "invalid value for checkpoint_minutes:"),
        ({"missing_embeddings": "skip"}, "missing_embeddings must be one of error, drop"),
    ):
        with pytest.raises(InputError, match=needle):
            train(a, emb, progress=False, **kw)
    with pytest.raises(InputError, match="invalid value for lsi_components"):
        lsi(a, lsi_components=0)
    with pytest.raises(InputError, match="invalid value for lsi_depth_corr_cutoff: nan is not a finite number"):
        lsi(a, lsi_depth_corr_cutoff=math.nan)


def test_prepare_and_embed_api_refuse_bad_values(tmp_path):
    from seqalignatac.embed.runner import embed_fasta
    from seqalignatac.pp.mapping import prepare

    with pytest.raises(InputError, match="--min-peak-frac: nan is not a finite number"):
        prepare("r.h5ad", "q.h5ad", "cell_type", min_peak_frac=math.nan)
    with pytest.raises(InputError, match="--overlap-width"):
        prepare("r.h5ad", "q.h5ad", "cell_type", overlap_width=0)
    with pytest.raises(InputError, match="--max-sequence-peaks"):
        prepare("r.h5ad", "q.h5ad", "cell_type", max_sequence_peaks=-1)
    for kw, needle in (
        ({"threads": 0}, "--threads"),
        ({"batch_size": 0}, "--batch-size"),
        ({"device": "x"}, "--device"),
    ):
        with pytest.raises(InputError, match=needle):
            embed_fasta("peaks.fa", "kmer", str(tmp_path / "e.h5"), progress=False, **kw)
    assert not (tmp_path / "e.h5").exists()


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"n_cells": 2}, "--cells: 2 is not in the range x>=4"),
        ({"reference_fraction": math.nan}, "--reference-fraction"),
        ({"mean_peaks_per_cell": math.inf}, "--peaks-per-cell"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_simulate_api_refuses_bad_values(tmp_path, kw, needle):
    from seqalignatac.datasets.synthetic import simulate

    with pytest.raises(InputError, match=needle):
        simulate(tmp_path / "sim", **kw)
    assert not (tmp_path / "sim").exists()


# ------------------------------------------------------------------ run: per-step options before any step


@pytest.fixture
def sheet(tmp_path):
    p = tmp_path / "sheet.csv"
    p.write_text("pair_id,reference,labels_key,query\np1,r.h5ad,cell_type,q.h5ad\n")
    return p


@pytest.mark.parametrize(
    "flag, value, needle",
    [
        ("--train-opt", "lr=nan", "--train-opt: invalid value for lr"),
        ("--train-opt", "epochs=0", "--train-opt: invalid value for --epochs"),
        ("--train-opt", "hidden=0", "--train-opt: invalid value for hidden"),
        ("--train-opt", "hidden=x", "--train-opt: invalid value for hidden"),
        ("--train-opt", "dropout=true", "--train-opt: invalid value for dropout"),
        ("--annotate-opt", "k=0", "--annotate-opt: invalid value for k"),
        ("--annotate-opt", "k=2.5", "--annotate-opt: invalid value for k: 2.5 is not an integer"),
        ("--annotate-opt", "lr=-1", "--annotate-opt: invalid value for lr"),
        ("--annotate-opt", "dropout=1.5", "--annotate-opt: invalid value for dropout"),
        ("--annotate-opt", "unknown_quantile=NaN", "--annotate-opt: invalid value for --unknown-quantile"),
        ("--annotate-opt", "unknown=maybe", "--annotate-opt: --unknown must be one of"),
        ("--annotate-opt", "class_weight=focal", "--annotate-opt: class_weight must be one of"),
    ],
)
def test_run_step_options_are_checked_before_any_step(tmp_path, sheet, flag, value, needle):
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli, ["run", "--samplesheet", str(sheet), "--outdir", str(out), "--model", "kmer", flag, value]
    )
    assert_one_line_error(res, needle)
    assert not out.exists()  # not even the results folder


def test_run_lsi_options_are_checked(tmp_path, sheet):
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        [
            "run",
            "--samplesheet",
            str(sheet),
            "--outdir",
            str(out),
            "--train-method",
            "lsi",
            "--train-opt",
            "lsi_components=0",
        ],
    )
    assert_one_line_error(res, "--train-opt: invalid value for lsi_components")
    assert not out.exists()


def test_run_step_options_are_converted_for_the_steps():
    from seqalignatac.workflow.pipeline import RunOptions, check_options

    opts = RunOptions(
        model="kmer",
        train_overrides={"hidden": [64, "32"], "lr": "0.01"},
        annotate_overrides={"k": 20.0, "unknown_quantile": "0.05"},
    )
    check_options(opts)
    assert opts.train_overrides == {"hidden": (64, 32), "lr": 0.01}
    assert opts.annotate_overrides == {"k": 20, "unknown_quantile": 0.05}
    assert isinstance(opts.annotate_overrides["k"], int)


# ------------------------------------------------------------------ class 8: names that become paths

BAD_IDS = ["../../x", "a/b", "/abs", "<script>", "x>y", "a b", ".hidden", "-dash", "..", "x\x00y", "a\nb", ""]


@pytest.mark.parametrize("pair_id", BAD_IDS)
def test_report_pair_id_is_confined(tmp_path, pair_id):
    res, out = _invoke(tmp_path, "report", "--pair-id", pair_id)
    assert_one_line_error(res, "'--pair-id'", "is not a valid id")
    assert not out.exists()
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


def test_report_pair_id_from_a_folder_name_is_checked(tmp_path):
    pair_dir = tmp_path / "my pair"
    pair_dir.mkdir()
    res = CliRunner().invoke(cli, ["report", "--pair-dir", str(pair_dir)])
    assert_one_line_error(res, "--pair-id", "'my pair' is not a valid id")
    assert not (pair_dir / "report").exists()


@pytest.mark.parametrize("pair_id", ["../x", "a/b", "<b>"])
def test_report_api_confines_the_pair_id(tmp_path, pair_id):
    from seqalignatac.report.html import build_report

    with pytest.raises(InputError, match="--pair-id"):
        build_report(pair_id, tmp_path / "p", tmp_path / "t", tmp_path / "a", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("pair_id", ["../x", "a/b", "x<y", ".x", "a b"])
def test_samplesheet_and_report_share_one_rule(tmp_path, pair_id):
    from seqalignatac.io.samplesheet import name_problem, read_samplesheet

    sheet = tmp_path / "s.csv"
    sheet.write_text(f'pair_id,reference,labels_key,query\n"{pair_id}",r.h5ad,l,q.h5ad\n')
    with pytest.raises(InputError) as e:
        read_samplesheet(sheet)
    assert name_problem(pair_id) in str(e.value)
