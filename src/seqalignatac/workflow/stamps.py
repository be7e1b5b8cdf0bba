"""Step stamps: small JSON files that let a re-run skip finished steps and resume killed ones.

For each step the runner computes a *plan*: the step's parameters plus a fingerprint (size and
modification time, like ``make``) of every input file.  Two stamps live in
``OUTDIR/<pair_id>/.seqalignatac/``:

- ``<step>.started.json``: written before the step runs.  If the run is killed, the next run
  finds the same plan there and lets the step resume (its outputs are left in place; steps with
  their own checkpoints or caches pick up where they stopped).
- ``<step>.done.json``: written after every output exists, with the outputs' fingerprints.  A
  step is skipped when its plan equals the recorded one and its outputs are unchanged.

Downstream steps take upstream outputs as inputs, so a re-run upstream step (new mtime)
re-runs everything after it, and only that.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from seqalignatac.io.atomic import write_json

STAMP_DIR = ".seqalignatac"


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Size + mtime of a file, or of every file under a folder (a model directory)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        return {"dir": str(p.resolve()), "files": {str(f.relative_to(p)): _stat(f) for f in files}}
    return {"path": str(p.resolve()), **_stat(p)}


def _stat(p: Path) -> dict[str, int]:
    st = p.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def plan(step: str, version: str, params: Mapping[str, Any], inputs: Mapping[str, str | os.PathLike]) -> dict[str, Any]:
    """What a step will do: JSON-normalised so it compares equal to what was written earlier."""
    doc = {
        "step": step,
        "version": version,
        "params": dict(params),
        "inputs": {k: file_fingerprint(v) for k, v in sorted(inputs.items())},
    }
    return json.loads(json.dumps(doc, default=str))


class Stamps:
    """The stamps of one pair."""

    def __init__(self, pair_dir: str | os.PathLike):
        self.dir = Path(pair_dir) / STAMP_DIR

    def _read(self, name: str) -> dict[str, Any] | None:
        p = self.dir / name
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # absent or torn: treat as not there

    def is_done(self, step: str, planned: Mapping[str, Any], outputs: Iterable[str | os.PathLike]) -> bool:
        done = self._read(f"{step}.done.json")
        if done is None or done.get("plan") != planned:
            return False
        recorded = done.get("outputs", {})
        for out in outputs:
            p = Path(out)
            if not p.exists() or recorded.get(str(p.resolve())) != file_fingerprint(p):
                return False
        return True

    def was_started(self, step: str, planned: Mapping[str, Any]) -> bool:
        """True when a previous run began this very step (same plan) and did not finish it."""
        return self._read(f"{step}.started.json") == dict(planned)

    def start(self, step: str, planned: Mapping[str, Any]) -> None:
        self.clear(step)
        write_json(self.dir / f"{step}.started.json", planned)

    def finish(
        self,
        step: str,
        planned: Mapping[str, Any],
        outputs: Iterable[str | os.PathLike],
        seconds: float,
        cpu_seconds: float | None = None,
    ) -> None:
        outs = {str(Path(o).resolve()): file_fingerprint(o) for o in outputs}
        write_json(
            self.dir / f"{step}.done.json",
            {
                "plan": dict(planned),
                "outputs": outs,
                "seconds": round(seconds, 3),
                "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 3),
            },
        )
        (self.dir / f"{step}.started.json").unlink(missing_ok=True)

    def clear(self, step: str) -> None:
        (self.dir / f"{step}.done.json").unlink(missing_ok=True)

    def seconds(self, step: str) -> float | None:
        done = self._read(f"{step}.done.json")
        return None if done is None else done.get("seconds")
