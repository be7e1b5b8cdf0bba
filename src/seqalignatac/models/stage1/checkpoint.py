"""Training checkpoints: everything needed to continue a run bit-for-bit.

One file, ``OUTDIR/checkpoint/state.pt``, replaced atomically: model and optimizer states,
per-cell weights and their Adam moments, the best state so far, the history, the position in
the epoch and the random-number-generator states.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch

from seqalignatac.errors import InputError
from seqalignatac.io.atomic import write_bytes
from seqalignatac.io.torch_files import load_tensors
from seqalignatac.models.stage1.outputs import CHECKPOINT_DIR

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"


def checkpoint_path(outdir: str | Path) -> Path:
    return Path(outdir) / CHECKPOINT_DIR / STATE_FILE


def save_checkpoint(outdir: str | Path, state: dict[str, Any]) -> None:
    path = checkpoint_path(outdir)
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(path, buf.getbuffer())
    log.debug("checkpoint: epoch %s step %s", state.get("epoch"), state.get("step"))


def load_checkpoint(outdir: str | Path) -> dict[str, Any] | None:
    path = checkpoint_path(outdir)
    if not path.exists():
        return None
    try:
        return load_tensors(path)
    except InputError as e:  # a truncated file cannot happen (atomic), a foreign one can
        raise InputError(f"{e.problem}; or delete it to start over", path) from None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
