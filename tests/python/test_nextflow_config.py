"""Pipeline parameters and samplesheet schema agree with each other and with the package.

- every parameter in nextflow.config is in nextflow_schema.json and vice versa, with matching
  defaults, and every `params.X` used by the pipeline's code is declared;
- assets/schema_input.json has the samplesheet columns of docs/design.md and of
  seqalignatac.io.samplesheet, and the example/test samplesheets validate against it (jsonschema
  for the standard keywords; nf-schema's own `exists` and `uniqueEntries` are checked here too);
- broken samplesheets fail, naming the row and column.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from seqalignatac.io import samplesheet as ss

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "nextflow.config"
SCHEMA = ROOT / "nextflow_schema.json"
INPUT_SCHEMA = ROOT / "assets" / "schema_input.json"


# --------------------------------------------------------------------------- nextflow.config params


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)(^|\s)//.*$", r"\1", text)


def config_params() -> dict[str, str]:
    """name -> default expression, from the top-level `params { }` block of nextflow.config."""
    text = _strip_comments(CONFIG.read_text())
    m = re.search(r"(?m)^params\s*\{", text)
    assert m, "nextflow.config has no params block"
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    body = text[m.end() : i - 1]
    return dict(re.findall(r"(?m)^\s*(\w+)\s*=\s*(.+?)\s*$", body))


def schema_params() -> dict[str, dict[str, Any]]:
    schema = json.loads(SCHEMA.read_text())
    out: dict[str, dict[str, Any]] = {}
    for group in schema.get("$defs", {}).values():
        out.update(group.get("properties", {}))
    out.update(schema.get("properties", {}))
    return out


def test_every_config_param_is_in_the_schema_and_vice_versa() -> None:
    in_config, in_schema = set(config_params()), set(schema_params())
    assert in_config - in_schema == set(), (
        f"in nextflow.config, not in nextflow_schema.json: {sorted(in_config - in_schema)}"
    )
    assert in_schema - in_config == set(), (
        f"in nextflow_schema.json, not in nextflow.config: {sorted(in_schema - in_config)}"
    )


def _groovy_literal(expr: str) -> Any:
    if expr in ("null",):
        return None
    if expr in ("true", "false"):
        return expr == "true"
    if re.fullmatch(r"-?\d+", expr):
        return int(expr)
    if re.fullmatch(r"-?\d+\.\d*", expr):
        return float(expr)
    m = re.fullmatch(r"'([^']*)'|\"([^\"$]*)\"", expr)
    if m:
        return m.group(1) if m.group(1) is not None else m.group(2)
    return ...  # an expression (date, interpolation): not compared


def test_schema_defaults_match_config_defaults() -> None:
    schema = schema_params()
    wrong = []
    for name, expr in config_params().items():
        value = _groovy_literal(expr)
        if value is ...:
            continue
        default = schema[name].get("default")
        if value in (None, False) and default is None:
            continue  # nf-core leaves null/false defaults out of the schema
        if default != value:
            wrong.append(f"{name}: config {value!r}, schema {default!r}")
    assert not wrong, "; ".join(wrong)


def test_every_param_has_a_description_and_type() -> None:
    bad = [n for n, p in schema_params().items() if not p.get("description") or "type" not in p]
    assert not bad, f"parameters without description/type: {bad}"


def test_every_params_reference_in_the_pipeline_is_declared() -> None:
    declared = set(config_params())
    # (.nf-test-*.nf: the launchers nf-test writes at the root while it runs)
    files = [
        *(f for f in ROOT.glob("*.nf") if not f.name.startswith(".nf-test")),
        *ROOT.glob("workflows/*.nf"),
        *ROOT.glob("subworkflows/local/**/*.nf"),
        *ROOT.glob("modules/local/**/main.nf"),
        *ROOT.glob("conf/*.config"),
        CONFIG,
    ]
    undeclared = {}
    for f in files:
        for name in re.findall(r"\bparams\.(\w+)", _strip_comments(f.read_text())):
            if name not in declared:
                undeclared.setdefault(name, f.relative_to(ROOT).as_posix())
    assert not undeclared, f"params used but not declared in nextflow.config: {undeclared}"


def test_profile_params_are_declared() -> None:
    """Params set inside profiles and conf/test*.config exist (a typo there would be silently new)."""
    declared = set(config_params())
    for f in sorted((ROOT / "conf").glob("test*.config")):
        text = _strip_comments(f.read_text())
        m = re.search(r"(?m)^params\s*\{(.*?)^\}", text, re.S)
        names = set(re.findall(r"(?m)^\s*(\w+)\s*=", m.group(1))) if m else set()
        assert names <= declared, f"{f.name}: unknown params {sorted(names - declared)}"


def test_modules_do_not_read_params() -> None:
    """nf-core convention: modules get options through ext.args, never params directly."""
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in ROOT.glob("modules/local/**/main.nf")
        if re.search(r"\bparams\.", _strip_comments(p.read_text()))
    ]
    assert not offenders, offenders


def test_no_if_statements_in_config_files() -> None:
    """Strict config syntax forbids `if` in config blocks (the language server even crashes on it)."""
    for f in [CONFIG, *ROOT.glob("conf/*.config"), ROOT / "tests" / "nextflow.config"]:
        assert not re.search(r"(?m)^\s*if\s*\(", _strip_comments(f.read_text())), f"{f}: use a closure/ternary, not if"


# --------------------------------------------------------------------------- samplesheet schema

NF_SCHEMA_ONLY = {"exists", "meta", "errorMessage", "uniqueEntries", "schema", "mimetype"}


def input_schema() -> dict[str, Any]:
    return json.loads(INPUT_SCHEMA.read_text())


def read_sheet(path: Path) -> list[dict[str, str]]:
    """Rows as nf-schema sees them: empty cells are absent."""
    with path.open(newline="") as fh:
        return [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]


def validate_sheet(path: Path, check_exists: bool = True) -> list[str]:
    """jsonschema for the standard keywords, plus nf-schema's `exists` and `uniqueEntries`.

    Returns messages naming the row (CSV line) and column; empty when the sheet is valid.
    """
    schema = input_schema()
    rows = read_sheet(path)
    errors = []
    validator = jsonschema.Draft202012Validator(schema)
    for err in validator.iter_errors(rows):
        where = list(err.absolute_path)
        row = f"line {where[0] + 2}" if where else "sheet"
        col = f" column {where[1]}" if len(where) > 1 else ""
        # nf-schema prints the schema's errorMessage; do the same so the tests see what users see
        sub = schema["items"]["properties"].get(where[1], {}) if len(where) > 1 else {}
        errors.append(f"{path.name} {row}{col}: {sub.get('errorMessage', err.message)}")
    props = schema["items"]["properties"]
    for i, row in enumerate(rows, start=2):
        for col, value in row.items():
            if check_exists and props.get(col, {}).get("exists") and not (path.parent / value).exists():
                errors.append(f"{path.name} line {i} column {col}: file {value} does not exist")
    for col in schema.get("uniqueEntries", []):
        seen: dict[str, int] = {}
        for i, row in enumerate(rows, start=2):
            if col in row and row[col] in seen:
                errors.append(f"{path.name} line {i} column {col}: {row[col]!r} repeats line {seen[row[col]]}")
            seen.setdefault(row.get(col, ""), i)
    return errors


def _design_columns() -> dict[str, bool]:
    text = (ROOT / "docs" / "design.md").read_text()
    section = text[text.index("## Samplesheet") :]
    section = section[: section.index("\n## ", 5)]
    return {m.group(1): m.group(2) == "yes" for m in re.finditer(r"^\| `(\w+)` \| (yes|no) \|", section, re.M)}


def test_input_schema_has_the_design_columns() -> None:
    schema = input_schema()
    columns = _design_columns()
    assert columns, "docs/design.md samplesheet table not found"
    assert list(schema["items"]["properties"]) == list(columns)
    assert set(schema["items"]["required"]) == {c for c, req in columns.items() if req}
    # ... and the same as the package's reader (`seqalignatac run` uses it)
    assert tuple(schema["items"]["required"]) == ss.REQUIRED
    assert set(columns) == set(ss.REQUIRED) | set(ss.OPTIONAL)
    assert schema["items"]["properties"]["pair_id"]["pattern"] == ss.PAIR_ID_RE.pattern
    assert schema["uniqueEntries"] == ["pair_id"]


def test_input_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(input_schema())
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA.read_text()))
    assert input_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_meta_fields_are_what_the_workflow_reads() -> None:
    props = input_schema()["items"]["properties"]
    meta = {c: p["meta"] for c, p in props.items() if "meta" in p}
    assert meta == {"pair_id": ["id"], "labels_key": ["labels_key"], "query_labels_key": ["query_labels_key"]}
    # the non-meta columns, in schema order, are what PIPELINE_INITIALISATION destructures
    assert [c for c in props if c not in meta] == ["reference", "query", "fasta"]
    init = (ROOT / "subworkflows/local/utils_nfcore_seqalignatac_pipeline/main.nf").read_text()
    assert "{ meta, reference, query, genome ->" in init


def test_example_samplesheet_validates() -> None:
    assert validate_sheet(ROOT / "assets" / "samplesheet.csv", check_exists=False) == []


@pytest.fixture()
def real_sheet(tmp_path: Path) -> Path:
    for name in ("ref.h5ad", "query.h5ad", "genome.fa.gz"):
        (tmp_path / name).write_bytes(b"x")
    sheet = tmp_path / "samplesheet.csv"
    sheet.write_text(
        "pair_id,reference,labels_key,query,query_labels_key,fasta\n"
        "p1,ref.h5ad,cell_type,query.h5ad,cell_type,genome.fa.gz\n"
        "p2.b,ref.h5ad,cell_type,query.h5ad,,\n"
    )
    return sheet


def test_test_samplesheet_with_real_files_validates(real_sheet: Path) -> None:
    assert validate_sheet(real_sheet) == []
    # the package's reader accepts the same sheet
    assert [p.pair_id for p in ss.read_samplesheet(real_sheet)] == ["p1", "p2.b"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("p2.b,", "p1,"), "line 3 column pair_id: 'p1' repeats line 2"),
        (("p2.b,", "p 2,"), "line 3 column pair_id: pair_id must be given and use only letters"),
        (("p2.b,ref.h5ad", "p2.b,ref.csv"), "line 3 column reference: reference must be an existing .h5ad"),
        (("p2.b,ref.h5ad", "p2.b,missing.h5ad"), "line 3 column reference: file missing.h5ad does not exist"),
        (("genome.fa.gz", "genome.txt"), "line 2 column fasta: fasta, when given, must be an existing genome FASTA"),
        (("p2.b,ref.h5ad,cell_type", "p2.b,ref.h5ad,"), "line 3: 'labels_key' is a required property"),
    ],
)
def test_broken_samplesheets_fail_naming_row_and_column(real_sheet: Path, edit: tuple[str, str], expected: str) -> None:
    text = real_sheet.read_text()
    assert edit[0] in text
    real_sheet.write_text(
        text.replace(edit[0], edit[1], 1) if edit[0] != "p2.b," else text.replace("\np2.b,", "\n" + edit[1])
    )
    errors = validate_sheet(real_sheet)
    assert any(expected in e for e in errors), errors


def test_multiqc_does_not_feed_the_versions_topic() -> None:
    """MULTIQC consumes the collected `versions` topic; emitting to it too would hang the run."""
    workflow = (ROOT / "workflows" / "seqalignatac.nf").read_text()
    assert "channel.topic('versions')" in workflow and "MULTIQC(" in workflow
    assert "topic: versions" not in _strip_comments((ROOT / "modules/local/multiqc/main.nf").read_text())
