"""Container images: names without a registry host in the modules, containers/build.sh tags what the
modules name (checked with a recording stand-in for podman/docker), and the release workflow lints.
The images themselves are built by .ci/run and used by test_pipeline_run.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "containers" / "build.sh"
WORKFLOW = ROOT / ".github" / "workflows" / "release-images.yml"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def module_images() -> set[str]:
    names = set()
    for main in (ROOT / "modules").rglob("main.nf"):
        names |= set(re.findall(r"[\w./-]+/[\w.-]+:[\w.-]+", "".join(re.findall(r"container (.*)", main.read_text()))))
    return names


def test_modules_name_images_without_a_registry_host_at_the_package_version():
    assert module_images() == {
        f"seqalignatac/seqalignatac:{VERSION}",
        f"seqalignatac/seqalignatac:{VERSION}-cuda",
        "seqalignatac/multiqc:1.27.1",
    }
    config = (ROOT / "nextflow.config").read_text()
    for engine in ("docker", "podman", "singularity", "apptainer"):
        assert re.search(rf"(?m)^{engine}\.registry\s*=\s*'ghcr\.io'", config), engine


def test_multiqc_image_pins_the_version_the_test_extra_installs():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert "multiqc==1.27.1" in extra
    assert "ARG MULTIQC_VERSION=1.27.1" in (ROOT / "containers" / "Dockerfile.multiqc").read_text()


@pytest.fixture()
def recording_engine(tmp_path):
    """A stand-in container engine that records its arguments, one call per line."""
    log = tmp_path / "calls.txt"
    engine = tmp_path / "fake-engine"
    engine.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\n')
    engine.chmod(0o755)
    return engine, log


def build(engine: Path, *args: str, build_opts: str = "", base: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINER_", "TORCH_"))}
    env.update(CONTAINER_ENGINE=str(engine), CONTAINER_BUILD_OPTS=build_opts)
    if base:
        env["CONTAINER_BASE_IMAGE"] = base
    return subprocess.run(["bash", str(BUILD), *args], capture_output=True, text=True, env=env, timeout=60)


def test_build_tags_every_image_the_modules_name(recording_engine):
    engine, log = recording_engine
    r = build(engine)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    tags = {c.split(" -t ")[1].split()[0] for c in calls}
    assert tags == {f"localhost/{name}" for name in module_images()}
    cpu = next(c for c in calls if f"seqalignatac:{VERSION} " in c + " ")
    cuda = next(c for c in calls if f"{VERSION}-cuda" in c)
    assert "TORCH_SPEC=torch==2.13.0+cpu" in cpu and "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in cpu
    assert "TORCH_SPEC=torch==2.13.0 " in cuda + " " and "TORCH_INDEX_URL= " in cuda + " "
    assert "PIP_FIND_LINKS= " in cuda + " " and "REQUIRE_CUDA=1" in cuda  # never the local CPU wheel
    assert all("BASE=python:3.11-slim-bookworm" in c for c in calls)
    assert not any(c.startswith("push") for c in calls)


def test_build_uses_the_container_runtime_environment_and_pushes(recording_engine):
    engine, log = recording_engine
    opts = "--network host -v /opt/wheels:/wheels:ro --build-arg PIP_FIND_LINKS=/wheels"
    env_base = "localhost/debian-python:bookworm"
    r = build(engine, "--registry", "registry.example.org/lab", "--push", "cpu", build_opts=opts, base=env_base)
    assert r.returncode == 0, r.stderr
    build_call, push_call = log.read_text().splitlines()
    assert build_call.startswith("build --network host -v /opt/wheels:/wheels:ro --build-arg PIP_FIND_LINKS=/wheels")
    assert f"BASE={env_base}" in build_call
    assert "TORCH_INDEX_URL= " in build_call + " "  # the local wheel folder replaces the PyTorch index
    assert f"-t registry.example.org/lab/seqalignatac/seqalignatac:{VERSION}" in build_call
    assert push_call == f"push registry.example.org/lab/seqalignatac/seqalignatac:{VERSION}"


def test_build_rejects_an_unknown_target(recording_engine):
    engine, log = recording_engine
    r = build(engine, "gpu")
    assert r.returncode == 2 and "unknown argument 'gpu'" in r.stderr
    assert not log.exists()


def test_dependencies_are_installed_before_the_source_is_copied():
    text = (ROOT / "containers" / "Dockerfile").read_text()
    assert text.index("COPY pyproject.toml") < text.index("-r /tmp/requirements.txt") < text.index("COPY src")
    assert "--no-deps /src" in text


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.skip(f"{name} not installed (pip install -e '.[test]')")
    return path


def test_release_workflow_is_a_valid_github_workflow():
    r = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_release_workflow_has_no_security_findings():
    r = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", str(WORKFLOW)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    text = WORKFLOW.read_text()
    assert "containers/build.sh --registry ghcr.io --push" in text  # the same script as here
