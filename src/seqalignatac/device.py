"""The one ``--device`` rule for every command and API function that runs torch.

``auto`` is a CUDA GPU when torch sees one, else the CPU; ``cpu`` is the CPU; ``cuda`` and
``cuda:N`` must name a GPU torch can see, else an :class:`~seqalignatac.errors.InputError` says so
in one line (before any work starts, not as a CUDA traceback minutes in).
"""

from __future__ import annotations

from seqalignatac.errors import InputError
from seqalignatac.params import DEVICE, check


def resolve_device(device: str):
    """``device`` (auto, cpu, cuda or cuda:N) as the ``torch.device`` to run on.

    Callers that store or compare the name use ``str()`` of the result (``"cpu"``, ``"cuda"``,
    ``"cuda:1"``).
    """
    import torch  # lazily: the CLI starts without loading torch

    device = check(device, DEVICE, "--device")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"--device {device} but no CUDA GPU is visible to torch "
                         f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                         "use --device cpu or auto")  # fmt: skip
    dev = torch.device(device)
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise InputError(f"--device {device} but torch sees {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; "
                         "use one of those, cpu or auto")  # fmt: skip
    return dev
