"""Reading PyTorch ``.bin``/``.pt`` files without running the code a pickle may carry.

``torch.load(weights_only=True)`` refuses a pickle that names a Python global (``os.system``,
a class), but its message is long, starts with a version note and invites the user to turn
the protection off.  :func:`load_tensors` says instead what happened and what to do.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Any

from seqalignatac.errors import InputError

CONVERT_HINT = (
    "convert it to safetensors where it came from (e.g. save_file(state_dict, 'model.safetensors') "
    "with safetensors.torch), or take the model's .safetensors file"
)


def load_tensors(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with our own one-line errors."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise InputError(refusal(str(e), what), path) from None
    except Exception as e:  # truncated zip, not a torch file at all
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InputError(f"cannot read the {what} ({type(e).__name__}: {first})", path) from None


def refusal(torch_message: str, what: str) -> str:
    m = re.search(r"GLOBAL ([\w.]+)", torch_message)
    if m:
        return f"refused: this {what} is a pickle that loads {m.group(1)}, and a pickle can run code; {CONVERT_HINT}"
    return f"cannot read the {what}: not a PyTorch weights file (a corrupt or foreign pickle); {CONVERT_HINT}"
