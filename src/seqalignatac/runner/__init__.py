"""One-machine runner: every step for every samplesheet pair in one process (`seqalignatac run`),
and the demo (`seqalignatac demo`).  Python entry points: :func:`run_pipeline`, :func:`run_demo`.
"""

from __future__ import annotations

from .cli import demo_command, run_command

__all__ = ["run_command", "demo_command", "run_pipeline", "run_demo", "RunOptions"]


def __getattr__(name: str):
    if name in ("run_pipeline", "RunOptions"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "run_demo":
        from .demo import run_demo

        return run_demo
    raise AttributeError(name)
