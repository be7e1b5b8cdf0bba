"""Run the modules' own shell scripts, the way a Nextflow task would, without Nextflow.

Each module's `script:` (and `stub:`) string is rendered with the values Nextflow would
interpolate (given below per module), written to `.command.sh` in a fresh task folder with the
inputs linked in under their staged names, and run with the pipeline's shell options
(`bash -C -e -u -o pipefail`), `bin/` first on PATH. The declared output paths and `eval`
outputs are then checked. The modules run in pipeline order on a small simulated pair, so the
chain PREPARE -> EXTRACT -> EMBED x 2 -> EMBEDMERGE -> TRAIN -> ANNOTATE -> REPORT -> INDEX is
exercised with the real commands, exactly as the modules call them.

What this cannot check: the Groovy around the strings (channels, `def` expressions, which are
re-stated in the bindings), containers, GPUs. Those need a real `nextflow run` (docs/usage.md).
"""

from __future__ import annotations

import glob
import os
import time
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "modules" / "local"
SHELL = ["bash", "-C", "-e", "-u", "-o", "pipefail"]  # process.shell in nextflow.config


def _section(text: str, name: str) -> str:
    m = re.search(rf"^\s*{name}:\s*$", text, re.M)
    assert m, f"no {name}: section"
    nxt = re.search(r"^\s*(stub|script|output|input|when):\s*$", text[m.end() :], re.M)
    return text[m.end() : m.end() + nxt.start()] if nxt else text[m.end() :]


def render_gstring(template: str, bindings: dict[str, str]) -> str:
    """Groovy GString -> text: `\\\\` -> `\\`, `\\$` -> `$`, `${expr}` -> bindings[expr]."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "\\"
        if m.group(2):
            return "$"
        if m.group(4):
            return '"'
        expr = m.group(3).strip()
        if expr not in bindings:
            raise KeyError("no test binding for ${" + expr + "}")
        return str(bindings[expr])

    return re.sub(r"(\\\\)|(\\\$)|\$\{([^{}]*)\}|(\\\")", sub, template)


def module_script(module: str, bindings: dict[str, str], stub: bool = False) -> str:
    text = (MODULES / module / "main.nf").read_text()
    section = _section(text, "stub" if stub else "script")
    m = re.search(r'"""(.*?)"""', section, re.S)
    assert m, f"{module}: no command string"
    return render_gstring(m.group(1), bindings)


def module_outputs(module: str, bindings: dict[str, str]) -> tuple[list[str], list[str]]:
    """Declared output path patterns and eval commands, rendered."""
    out = _section((MODULES / module / "main.nf").read_text(), "output")
    paths = [render_gstring(p, bindings) for p in re.findall(r'path\(?\s*"([^"]+)"', out)]
    evals = [e.replace('\\"', '"') for e in re.findall(r"eval\('((?:[^'\\]|\\.)*)'\)", out)]
    return paths, evals


def run_task(workdir: Path, name: str, module: str, inputs: dict[str, Path], bindings: dict[str, str],
             stub: bool = False) -> Path:
    """Stage inputs (links), run the rendered script, check declared outputs; return the task folder."""
    task = workdir / name
    task.mkdir(parents=True)
    for staged, source in inputs.items():
        target = task / staged
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source.resolve())
    (task / ".command.sh").write_text(module_script(module, bindings, stub))
    start = time.perf_counter()
    env = {**os.environ, "PATH": f"{ROOT / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "OMP_NUM_THREADS": "2", "PYTHONNOUSERSITE": "1"}
    r = subprocess.run([*SHELL, ".command.sh"], cwd=task, capture_output=True, text=True, env=env, timeout=600)
    print(f"{name}: {time.perf_counter() - start:.1f} s")  # shown with -s, and on failure
    assert r.returncode == 0, f"{module} failed ({r.returncode}):\n{(task / '.command.sh').read_text()}\n{r.stderr[-3000:]}"
    paths, evals = module_outputs(module, bindings)
    for pattern in paths:
        assert glob.glob(str(task / pattern)), f"{module}: declared output {pattern} missing in {sorted(os.listdir(task))}"
    for cmd in evals:
        e = subprocess.run([*SHELL, "-c", cmd], cwd=task, capture_output=True, text=True, env=env, timeout=120)
        assert e.returncode == 0 and e.stdout.strip(), f"{module}: eval({cmd}) failed: {e.stderr[-500:]}"
    return task


META = {"meta.id": "sim", "meta.label_key": "cell_type", "meta.query_label_key": "cell_type"}
TASK = {"task.cpus": "2"}


@pytest.mark.slow
def test_module_scripts_run_in_pipeline_order(tmp_path: Path) -> None:
    sim = run_task(tmp_path, "simulate", "seqalignatac/simulate", {},
                   {"args": "--cells 150 --peaks 80 --cell-types 2 --novel-query-types 1 --seed 0"})
    ref, query, genome = (sim / "simulated" / f for f in ("reference.h5ad", "query.h5ad", "genome.fa"))

    prep = run_task(tmp_path, "prepare", "seqalignatac/prepare",
                    {"input/reference/reference.h5ad": ref, "input/query/query.h5ad": query},
                    {**META, "reference": "input/reference/reference.h5ad", "query": "input/query/query.h5ad",
                     "query_label": "--query-label-key 'cell_type'", "args": ""})

    ext = run_task(tmp_path, "extract", "seqalignatac/extract",
                   {"peaks.bed": prep / "prepare" / "peaks.bed", "genome/genome.fa": genome},
                   {"peaks": "peaks.bed", "genome": "genome/genome.fa", "args": "--width 60"})
    sha = subprocess.run(["sha256sum", "extract/peaks.fa"], cwd=ext, capture_output=True, text=True).stdout[:64]
    assert re.fullmatch(r"[0-9a-f]{64}", sha)

    shards = []
    for i in (1, 2):
        emb = run_task(tmp_path, f"embed{i}", "seqalignatac/embed", {"peaks.fa": ext / "extract" / "peaks.fa"},
                       {**TASK, "fasta": "peaks.fa", "model": "kmer:4", "part": f"shard_{i:05d}.h5", "shard": str(i),
                        "meta.shards": "2", "device": "cpu", "args": ""})
        shards.append(emb / f"shard_{i:05d}.h5")
    merged = run_task(tmp_path, "embedmerge", "seqalignatac/embedmerge",
                      {f"parts/{s.name}": s for s in shards}, {"args": ""})
    h5 = merged / "embed" / "embeddings.h5"

    train = run_task(tmp_path, "train", "seqalignatac/train",
                     {"accessibility.h5ad": prep / "prepare" / "accessibility.h5ad", "embeddings.h5": h5},
                     {**TASK, "accessibility": "accessibility.h5ad", "embeddings_opt": "--embeddings embeddings.h5",
                      "device": "cpu", "args": "--method nt --seed 0 --epochs 3"})
    ann = run_task(tmp_path, "annotate", "seqalignatac/annotate",
                   {"cell_embeddings.h5ad": train / "train" / "cell_embeddings.h5ad"},
                   {**TASK, "cells": "cell_embeddings.h5ad", "device": "cpu", "args": "--method gda --seed 0 --epochs 10"})
    assert (ann / "annotate" / "metrics.json").is_file()  # the query had labels

    rep = run_task(tmp_path, "report", "seqalignatac/report",
                   {"in/prepare": prep / "prepare", "in/train": train / "train", "in/annotate": ann / "annotate",
                    "in/extract": ext / "extract", "in/embed/embeddings.h5": h5},
                   {**META, "prepare_dir": "in/prepare", "train_dir": "in/train", "annotate_dir": "in/annotate",
                    "extract_opt": "--extract-dir in/extract", "embed_opt": "--embed-dir in/embed",
                    "args": "--seed 0 --max-umap-cells 100"})
    assert (rep / "report" / "sim_report.html").stat().st_size > 1000

    index = run_task(tmp_path, "index", "seqalignatac/index", {"reports/report_00001": rep / "report"}, {"args": ""})
    html = (index / "index" / "index.html").read_text()
    assert "sim/report/sim_report.html" in html  # links match the published <outdir>/<pair_id>/report/


STUB_BINDINGS: dict[str, dict[str, str]] = {
    "seqalignatac/simulate": {},
    "seqalignatac/nttiny": {},
    "seqalignatac/fetchmodel": {"model": "x/y"},
    "seqalignatac/prepare": {**META},
    "seqalignatac/extract": {**META},
    "seqalignatac/embed": {**META, "part": "shard_00001.h5", "shard": "1", "meta.shards": "1"},
    "seqalignatac/embedmerge": {**META},
    "seqalignatac/train": {**META},
    "seqalignatac/annotate": {**META},
    "seqalignatac/report": {**META},
    "seqalignatac/index": {},
    "multiqc": {},
}


@pytest.mark.parametrize("module", sorted(STUB_BINDINGS))
def test_stub_creates_every_declared_output(tmp_path: Path, module: str) -> None:
    """`-stub-run` and the nf-test stub tests rely on these; each declared output must appear."""
    text = (MODULES / module / "main.nf").read_text()
    stub = _section(text, "stub")
    defs = dict(re.findall(r"^\s*def\s+(\w+)\s*=\s*(.+)$", stub, re.M))
    assert set(defs) <= {"part"}, f"{module}: unexpected stub variables {defs}"
    task = tmp_path / "task"
    task.mkdir()
    (task / ".command.sh").write_text(module_script(module, STUB_BINDINGS[module], stub=True))
    r = subprocess.run([*SHELL, ".command.sh"], cwd=task, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    paths, _ = module_outputs(module, STUB_BINDINGS[module])
    for pattern in paths:
        assert glob.glob(str(task / pattern)), f"{module}: stub does not create {pattern}"


def test_every_module_has_a_stub_binding() -> None:
    modules = {p.parent.relative_to(MODULES).as_posix() for p in MODULES.glob("**/main.nf") if "tests" not in p.parts}
    assert modules == set(STUB_BINDINGS)
