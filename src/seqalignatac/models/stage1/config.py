"""Settings of one stage-1 network run (no torch import: the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from seqalignatac.errors import InputError
from seqalignatac.models.stage1.options import ACTIVATIONS, BETAS, TRAIN_RANGES, setting_name
from seqalignatac.params import POSITIVE_INT, check, check_all


@dataclass
class TrainConfig:
    """Settings of one run (all of them enter the run fingerprint that ``resume`` checks)."""

    hidden: tuple[int, ...] = (256,)
    bottleneck: int = 32  # scBasset's default cell-embedding size
    activation: str = "gelu"
    dropout: float = 0.2
    epochs: int = 300
    patience: int = 20
    lr: float = 1e-2  # scBasset/SANGO: Adam lr 0.01, betas (0.95, 0.9995)
    betas: tuple[float, float] = (0.95, 0.9995)
    batch_size: int = 128
    cell_block_size: int = 0
    max_step_entries: int | None = None
    holdout_fraction: float = 0.1
    seed: int = 0
    eval_cells: int = 10_000  # cells sampled for the AUROC/AUPRC estimate (all when fewer)
    eval_entries: int = 2_000_000  # max peak x cell entries scored per estimate (AUROC s.e. ~0.001)
    min_delta: float = 1e-4  # smallest held-out AUROC gain that counts as better
    max_steps_per_epoch: int = 0  # 0: full epochs; else each epoch is a random subset of that many steps

    def check(self, path=None) -> None:
        """The CLI's and the ``[train]`` table's ranges (same types, same messages) for API callers."""
        check_all(asdict(self), TRAIN_RANGES, path, option_name=setting_name)
        for width in self.hidden:
            check(width, POSITIVE_INT, "hidden", path)
        check(self.betas, BETAS, "betas", path)
        if self.activation not in ACTIVATIONS:
            raise InputError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}", path)
