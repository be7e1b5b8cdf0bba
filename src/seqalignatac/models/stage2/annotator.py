"""The fitted stage-2 model: everything ``annotate`` learned, saved to a folder and loaded back.

``annotate`` writes it to ``annotate/model/`` (:data:`seqalignatac.keys.ANNOTATOR_DIR`)::

    from seqalignatac.models.stage2.annotator import Annotator
    res = Annotator.load("annotate/model").predict(cells)   # cells: the same cell_embeddings.h5ad
    res.predictions                                          # == annotate/predictions.csv

GDA is transductive: ``predict`` takes the cells the model was fitted on (reference + query),
rebuilds the two kNN graphs the same way and runs the saved networks in eval mode; nothing is
trained again.  The kNN transfer, the logistic regression and the distance test use the saved
reference cells; the Unknown calls apply the saved thresholds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np

from seqalignatac.errors import InputError, require_file
from seqalignatac.io.atomic import write_bytes, write_json
from seqalignatac.models.stage2.inputs import ReferenceSet, SplitCells, split_domains
from seqalignatac.models.stage2.model import A2GNN
from seqalignatac.models.stage2.options import config_with
from seqalignatac.models.stage2.results import Calls, Stage2Result, assemble_result, summary_head
from seqalignatac.models.stage2.train import GDAConfig, GDAInputs, domain_graphs, ensemble_proba, set_threads
from seqalignatac.models.stage2.transfer import class_probabilities
from seqalignatac.models.stage2.unknown import confidence_entropy, query_evidence, unknown_flags

FORMAT = 1
STATE_FILE = "annotator.json"  # method, classes, config, settings, reference cell ids, Unknown thresholds
NETWORKS_FILE = "networks.safetensors"  # every ensemble member's weights, as member<i>.<parameter>
ARRAYS_FILE = "reference.safetensors"  # reference cells, rows, labels; logistic-regression coefficients


@dataclass
class Annotator:
    """A fitted stage-2 model (:func:`~.api.annotate_full` returns it as ``result.annotator``)."""

    method: str
    classes: list[str]
    config: GDAConfig
    settings: dict[str, Any]  # the annotate_full keywords of the run (labels_key, unknown, ..., seed)
    reference_ids: list[str]  # the reference cells with signal, in graph order
    train_rows: np.ndarray  # rows of reference_ids trained on
    held_rows: np.ndarray  # rows held out for calibration
    reference: ReferenceSet
    unknown: dict[str, Any]  # the Unknown thresholds (summary['unknown'])
    linear: dict[str, np.ndarray] | None = None  # logistic regression: classes, coef, intercept
    networks: list[A2GNN] = field(default_factory=list)  # the GDA ensemble

    @property
    def mix(self) -> dict[str, float]:
        """Weights of the final probabilities (GDA, kNN, logistic regression)."""
        if self.method == "knn":
            return {"gda": 0.0, "knn": 1.0, "linear": 0.0}
        w, v = float(self.config.knn_mix), float(self.config.linear_mix)
        return {"gda": max(0.0, 1.0 - w - v), "knn": w, "linear": v}

    # --- prediction ------------------------------------------------------------------------------

    def predict(
        self, cells: ad.AnnData, device: str | None = None, threads: int | None = None, source: str | None = None
    ) -> Stage2Result:
        """Predictions for the query cells of ``cells``, from the saved state (nothing is trained).

        Parameters
        ----------
        cells
            The cell embeddings the model was fitted on (GDA needs the same reference cells; the
            query is taken from ``cells``).  Not modified.
        device, threads
            Where to run; None: the fitted run's settings.
        source
            The file ``cells`` came from, named in error messages.

        Returns
        -------
        Stage2Result
            As :func:`~.api.annotate_full` returned it: ``query`` (a copy of the query cells with
            the obs/obsm/uns fields :func:`~.api.assemble_result` writes), ``predictions`` (equal
            to predictions.csv), ``summary``; ``train`` and ``annotator`` are None.

        Raises
        ------
        InputError
            ``cells`` lacks what the model needs, or (GDA) its reference cells differ.
        """
        import time

        t0 = time.perf_counter()
        s = self.settings
        threads = s["threads"] if threads is None else threads
        device = s["device"] if device is None else device
        set_threads(threads)
        split = split_domains(cells, s["embedding_key"], source)
        classes = np.array(self.classes, dtype=object)
        gda, hidden, graph_info = None, None, {}
        if self.method == "gda":
            gda, hidden, graph_info = self._gda_proba(split, device, threads, source)
        q_proba, held_proba, knn_info = class_probabilities(
            self.method, self.config, self.reference, split.x_query, classes.size, s["knn_k"], threads, gda, self.linear
        )
        conf, _ = confidence_entropy(q_proba)
        q_dist, _, s_dist, clusters = query_evidence(s, split.x_query, q_proba.argmax(axis=1), self.reference, threads)
        flags = unknown_flags(self.unknown, conf, q_dist, s_dist, clusters)
        calls = Calls(q_proba, held_proba, flags, dict(self.unknown), q_dist, hidden, s_dist, clusters)
        tail = {
            "graph": graph_info or knn_info,
            "config": self.config.to_dict() if self.method == "gda" else {"knn_k": s["knn_k"]},
            "seconds": round(time.perf_counter() - t0, 3),
        }
        return assemble_result(split, classes, calls, self.reference, summary_head(self.method, s), tail)

    def _gda_proba(self, split: SplitCells, device: str, threads: int | None, source: str | None):
        from seqalignatac.device import resolve_device

        if split.reference_ids != self.reference_ids:
            raise InputError(
                "the reference cells differ from the ones this model was fitted on (GDA is "
                "transductive); pass the same cell_embeddings.h5ad",
                source,
            )
        if not np.array_equal(split.x_ref[self.train_rows], self.reference.x_train):
            raise InputError(
                f"obsm[{self.settings['embedding_key']!r}] of the reference cells differs from the one "
                "this model was fitted on; pass the same cell_embeddings.h5ad",
                source,
            )
        a_ref, a_query = domain_graphs(split, self.config, threads, self.settings["seed"])
        inp = GDAInputs.build(split.x_ref, split.x_query, a_ref, a_query, self.config, resolve_device(device))
        res = ensemble_proba(self.networks, inp, self.config)
        gda = (res.query_proba, res.reference_proba[self.held_rows])
        return gda, res.query_hidden, {"reference_nnz": int(a_ref.nnz), "query_nnz": int(a_query.nnz)}

    # --- files -----------------------------------------------------------------------------------

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the model to ``folder`` (created): ``annotator.json`` (method, classes, mix weights,
        config and settings as JSON, reference cell ids, Unknown thresholds), ``networks.safetensors``
        (every ensemble member) and ``reference.safetensors`` (reference embeddings and labels, rows,
        logistic-regression coefficients)."""
        from safetensors.numpy import save as save_arrays
        from safetensors.torch import save as save_tensors

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            "format": FORMAT,
            "method": self.method,
            "classes": self.classes,
            "mix": self.mix,
            "config": self.config.to_dict(),
            "settings": self.settings,
            "reference_ids": self.reference_ids,
            "unknown": self.unknown,
            "n_networks": len(self.networks),
            "n_inputs": int(self.reference.x_train.shape[1]),
            "linear": self.linear is not None,
        }
        write_json(folder / STATE_FILE, state)
        ref = self.reference
        arrays = {
            "x_train": ref.x_train,
            "y_train": ref.y_train,
            "x_held": ref.x_held,
            "y_held": ref.y_held,
            "train_rows": self.train_rows,
            "held_rows": self.held_rows,
        }
        arrays.update({f"linear_{k}": v for k, v in (self.linear or {}).items()})
        write_bytes(folder / ARRAYS_FILE, save_arrays({k: np.ascontiguousarray(v) for k, v in arrays.items()}))
        tensors = {
            f"member{i}.{k}": v.detach().cpu().contiguous()
            for i, net in enumerate(self.networks)
            for k, v in net.state_dict().items()
        }
        write_bytes(folder / NETWORKS_FILE, save_tensors(tensors, metadata={"classes": "\t".join(self.classes)}))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Annotator:
        """The model :meth:`save` wrote to ``folder``."""
        from safetensors.numpy import load_file as load_arrays
        from safetensors.torch import load_file as load_tensors

        folder = Path(folder)
        path = require_file(folder / STATE_FILE, "stage-2 model")
        try:
            state = json.loads(Path(path).read_text())
        except ValueError as e:
            raise InputError(f"not valid JSON ({e}); the model folder is damaged: run annotate again", path) from None
        if state.get("format") != FORMAT:
            raise InputError(f"model format {state.get('format')!r} is not {FORMAT}; run annotate again", path)
        # Fresh, aligned copies: arrays read straight from the file's buffer may sit at unaligned
        # addresses, where BLAS takes other code paths and the last bit of a probability can move.
        arrays = {
            k: np.array(v, copy=True)
            for k, v in load_arrays(require_file(folder / ARRAYS_FILE, "stage-2 model arrays")).items()
        }
        tensors = load_tensors(require_file(folder / NETWORKS_FILE, "stage-2 model weights"))
        config = config_with(**state["config"])
        networks = []
        for i in range(state["n_networks"]):
            net = A2GNN(state["n_inputs"], len(state["classes"]), hidden=config.hidden, dropout=config.dropout)
            prefix = f"member{i}."
            net.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            networks.append(net.eval())
        linear = (
            {k[len("linear_") :]: v for k, v in arrays.items() if k.startswith("linear_")} if state["linear"] else None
        )
        if linear and "coef" in linear:
            linear["coef"] = np.asfortranarray(linear["coef"])  # the layout fit_linear returns
        ref = ReferenceSet(arrays["x_train"], arrays["y_train"], arrays["x_held"], arrays["y_held"])
        return cls(
            method=state["method"],
            classes=list(state["classes"]),
            config=config,
            settings=state["settings"],
            reference_ids=list(state["reference_ids"]),
            train_rows=arrays["train_rows"],
            held_rows=arrays["held_rows"],
            reference=ref,
            unknown=state["unknown"],
            linear=linear,
            networks=networks,
        )


__all__ = ["Annotator"]
