"""One .h5ad reader (anndata_io.read_h5ad): every step that reads an AnnData file fails the same way."""

import pytest

from seqalignatac.errors import InputError
from seqalignatac.io.h5ad import NOT_H5AD_HINT, read_h5ad
from seqalignatac.models.stage1.data import read_accessibility
from seqalignatac.models.stage2.outputs import read_cells, read_truth
from seqalignatac.report.data import load_pair


@pytest.fixture
def corrupt(tmp_path):
    path = tmp_path / "accessibility.h5ad"
    path.write_text("not hdf5\nsecond line")
    return path


def _error(call) -> str:
    with pytest.raises(InputError) as e:
        call()
    return str(e.value)


def test_every_reader_gives_the_one_line_error(corrupt, tmp_path):
    prep, train, ann = (tmp_path / d for d in ("prepare", "train", "annotate"))
    for d in (prep, train, ann):
        d.mkdir()
    corrupt.rename(prep / "accessibility.h5ad")
    bad = str(prep / "accessibility.h5ad")
    hints = {
        NOT_H5AD_HINT: lambda: read_h5ad(bad),  # prepare's reader
        "pass the accessibility.h5ad written by prepare": lambda: read_accessibility(bad),  # train
        "pass stage 1's cell_embeddings.h5ad": lambda: read_cells(bad),  # annotate
        "pass an .h5ad with the labels in obs, or a CSV/TSV": lambda: read_truth(bad, "label"),  # evaluate
        "re-run the step that wrote it": lambda: load_pair("p", prep, train, ann),  # report (backed)
    }
    for hint, call in hints.items():
        message = _error(call)
        assert message.startswith(f"{bad}: cannot read as .h5ad ("), message
        assert message.endswith(f"); {hint}"), message
        assert "\n" not in message, message


def test_missing_file_names_what_was_expected(tmp_path):
    assert (
        _error(lambda: read_cells(tmp_path / "no.h5ad"))
        == f"{tmp_path / 'no.h5ad'}: cell embeddings (.h5ad) does not exist; check the path"
    )


def test_backed_reads_obs_without_loading_x(tmp_path):
    import anndata as ad
    import numpy as np
    import pandas as pd

    path = tmp_path / "cells.h5ad"
    ad.AnnData(np.ones((3, 2), dtype=np.float32), obs=pd.DataFrame(index=["a", "b", "c"])).write_h5ad(path)
    backed = read_h5ad(path, backed=True)
    try:
        assert backed.isbacked and list(backed.obs_names) == ["a", "b", "c"]
    finally:
        backed.file.close()
    assert not read_h5ad(path).isbacked
