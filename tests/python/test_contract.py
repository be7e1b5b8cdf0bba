"""The data contract is defined once (seqalignatac.keys) and docs/design.md shows exactly it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from seqalignatac import keys

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "seqalignatac"
DESIGN = ROOT / "docs" / "design.md"

CONTRACT = {name: value for name, value in vars(keys).items() if name.isupper() and isinstance(value, str)}
# Names specific enough that any literal copy is a copy of the contract: files, obs/obsm keys, columns.
# n_peaks, n_cells and labels_key are also parameter names (simulate's n_peaks and n_cells, run's
# labels_key; n_cells is metrics.json's count too): checked as words.
DISTINCTIVE = {v for v in CONTRACT.values() if ("." in v or "_" in v or v[0].isupper())} - {
    keys.N_PEAKS,
    keys.N_CELLS,
    keys.LABELS_KEY,
}
# The same spelling with another meaning, each one checked here by file so a new copy still fails.
OTHER_MEANINGS = {
    ("embed/nt_model.py", "model.safetensors"),  # the Hugging Face weight file of a Nucleotide Transformer
    ("embed/tiny.py", "model.safetensors"),  # ... which the tiny test model writes
    ("io/convert.py", "peaks.bed"),  # a 10x / ArchR export folder's peak file
    ("convert.py", "peaks.bed"),
    ("report/mqc.py", "Unknown"),  # a MultiQC column title
}
# Objects whose subscripts are AnnData/DataFrame keys: a generic word used there is a contract key.
KEYED = {"obs", "obsm", "uns", "var", "varm", "columns", "pred", "predictions"}


def _source_files():
    for path in sorted(SRC.rglob("*.py")):
        if path.name != "keys.py":
            yield path, path.relative_to(SRC).as_posix(), ast.parse(path.read_text())


def _keyed_base(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr if node.attr in KEYED else None
    if isinstance(node, ast.Name):
        return node.id if node.id in KEYED else None
    return None


def test_design_md_has_the_contract_table_of_keys_py():
    text = DESIGN.read_text()
    m = re.search(r"<!-- contract: start.*?-->\n(.*?)<!-- contract: end -->", text, re.S)
    assert m, "docs/design.md lacks the <!-- contract: start --> ... <!-- contract: end --> block"
    assert m.group(1).strip() == keys.contract_table().strip(), (
        "docs/design.md's contract table differs from seqalignatac.keys; paste `python -m seqalignatac.keys`"
    )


def test_every_distinctive_contract_name_is_a_literal_only_in_keys_py():
    copies = []
    for _, rel, tree in _source_files():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in DISTINCTIVE
                and (rel, node.value) not in OTHER_MEANINGS
            ):
                copies.append(f"{rel}:{node.lineno} {node.value!r}")
    assert not copies, "use seqalignatac.keys instead of: " + ", ".join(copies)


def test_generic_contract_words_are_not_spelled_out_as_keys_or_domain_values():
    words = set(CONTRACT.values()) - DISTINCTIVE
    copies = []
    for _, rel, tree in _source_files():
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and _keyed_base(node.value):
                key = node.slice
                if isinstance(key, ast.Constant) and key.value in words:
                    copies.append(f"{rel}:{node.lineno} {_keyed_base(node.value)}[{key.value!r}]")
            elif isinstance(node, ast.Compare):
                for side in (node.left, *node.comparators):
                    if isinstance(side, ast.Constant) and side.value in (keys.REFERENCE, keys.QUERY, keys.UNKNOWN):
                        copies.append(f"{rel}:{node.lineno} compared with {side.value!r}")
    assert not copies, "use seqalignatac.keys instead of: " + ", ".join(copies)


def test_labels_key_of_prefers_the_argument_then_what_prepare_recorded():
    import anndata as ad

    a = ad.AnnData()
    assert keys.labels_key_of(a) == keys.DEFAULT_LABELS_KEY
    a.uns[keys.UNS] = {keys.LABELS_KEY: "ct"}
    assert keys.labels_key_of(a) == "ct"
    assert keys.labels_key_of(a, "other") == "other"


def test_design_md_layout_names_every_subpackage():
    text = DESIGN.read_text()
    section = text.split("## Layout of the package", 1)[1].split("\n## ", 1)[0]
    packages = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())
    missing = [p for p in packages if f"`{p}/`" not in section]
    assert not missing, f"docs/design.md's layout table lacks: {missing}"
