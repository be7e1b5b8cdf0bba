"""Workflows on one machine: every step for every samplesheet pair in one process
(:func:`run_pipeline`, ``seqalignatac run``) and the demo (:func:`run_demo`, ``seqalignatac demo``);
``stamps`` records what each step ran on, so a re-run skips finished steps."""

from __future__ import annotations

__all__ = ["run_pipeline", "run_demo", "RunOptions"]


def __getattr__(name: str):
    if name in ("run_pipeline", "RunOptions"):
        from seqalignatac.workflow import pipeline

        return getattr(pipeline, name)
    if name == "run_demo":
        from seqalignatac.workflow.demo import run_demo

        return run_demo
    raise AttributeError(name)
