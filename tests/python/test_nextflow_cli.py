"""The Nextflow modules call the real `seqalignatac` commands with options those commands have.

Each module's `script:` block is parsed: every call of `seqalignatac <sub>` or of a `bin/` script is
checked against the click command it runs (unknown options, missing required options, bad choice
values), including the options the module gets through `task.ext.args` from conf/modules.config
and through `def x = "..."` strings of the script block. The checker is also run on broken module
texts to show that it catches each kind of mistake.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

from seqalignatac.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "modules" / "local"
BIN = ROOT / "bin"
MODULES_CONFIG = ROOT / "conf" / "modules.config"


# --------------------------------------------------------------------------- parsing helpers


def strip_comments(text: str) -> str:
    """Drop // line comments and /* */ blocks outside string literals (enough for our files)."""
    out, i, n = [], 0, len(text)
    quote: str | None = None
    while i < n:
        c = text[i]
        if quote:
            if text.startswith(quote, i):
                out.append(quote)
                i += len(quote)
                quote = None
                continue
            if c == "\\" and i + 1 < n:
                out.append(text[i : i + 2])
                i += 2
                continue
            out.append(c)
            i += 1
            continue
        if text.startswith('"""', i) or text.startswith("'''", i):
            quote = text[i : i + 3]
            out.append(quote)
            i += 3
        elif c in "\"'":
            quote = c
            out.append(c)
            i += 1
        elif text.startswith("//", i) and (i == 0 or text[i - 1] != ":"):  # keep URLs (https://)
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(text: str, open_index: int) -> int:
    """Index of the `}` closing the `{` at open_index (braces in our configs are balanced)."""
    depth = 0
    for i in range(open_index, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced braces")


def string_literals(expr: str) -> list[str]:
    """The contents of the "..." and '...' literals of a Groovy expression."""
    return [m.group(2) for m in re.finditer(r"(\"|')((?:\\.|(?!\1).)*)\1", expr)]


def interpolations_to_values(text: str) -> str:
    """Replace ${...} and $name by VALUE so shell tokenizing sees one word per value."""
    text = re.sub(r"\$\{[^{}]*\}", "VALUE", text)
    return re.sub(r"\$[A-Za-z_]\w*", "VALUE", text)


def tokens_of(text: str) -> list[str]:
    try:
        return shlex.split(text.replace("\\\\", "\\"))
    except ValueError:
        return text.split()


def ext_args_by_process(config_text: str) -> dict[str, list[str]]:
    """process name -> tokens of the ext.args expressions in conf/modules.config withName blocks."""
    text = strip_comments(config_text)
    result: dict[str, list[str]] = {}
    for m in re.finditer(r"withName\s*:\s*['\"]?([^'\"{]+?)['\"]?\s*\{", text):
        body = text[m.end() : matching_brace(text, m.end() - 1)]
        a = re.search(r"\bext\.args\s*=", body)
        if not a:
            continue
        rest = body[a.end() :]
        stop = re.search(r"\n\s*(ext\.\w+|publishDir|\w+)\s*=", rest)
        expr = rest[: stop.start()] if stop else rest
        toks: list[str] = []
        for lit in string_literals(expr):
            toks += tokens_of(interpolations_to_values(lit))
        for name in m.group(1).split("|"):
            result.setdefault(name.strip(), []).extend(toks)
    return result


@dataclass
class Call:
    """One command line of a module's script block."""

    process: str
    module: Path
    program: str  # 'seqalignatac' or a bin/ script name
    subcommand: str | None
    tokens: list[str] = field(default_factory=list)


def process_name(module_text: str) -> str:
    m = re.search(r"^\s*process\s+(\w+)\s*\{", module_text, re.M)
    if not m:
        raise ValueError("no `process NAME {` found")
    return m.group(1)


def script_block(module_text: str) -> str:
    text = strip_comments(module_text)
    m = re.search(r"^\s*script:\s*$", text, re.M)
    if not m:
        raise ValueError("no script: section")
    end = re.search(r"^\s*stub:\s*$", text[m.end() :], re.M)
    return text[m.end() : m.end() + end.start()] if end else text[m.end() :]


def bin_subcommand(script: Path) -> str | None:
    """SUBCOMMAND of a bin/ wrapper, or None for a stand-alone click script."""
    m = re.search(r'^SUBCOMMAND\s*=\s*"([^"]+)"', script.read_text(), re.M)
    return m.group(1) if m else None


def calls_in_module(module_text: str, module: Path, ext_args: dict[str, list[str]]) -> list[Call]:
    name = process_name(module_text)
    block = script_block(module_text)
    defs = dict(re.findall(r"^\s*def\s+(\w+)\s*=\s*(.+)$", block, re.M))
    m = re.search(r'"""(.*?)"""', block, re.S)
    if not m:
        raise ValueError(f"{module}: no command string in the script block")
    shell = m.group(1).replace("\\\\\n", " ")  # Groovy `\\` + newline = shell line continuation
    calls = []
    for line in shell.splitlines():
        raw = line.strip()
        if not raw or raw.startswith("#"):
            continue
        first = raw.split()[0]
        if first == "seqalignatac":
            program, sub = first, raw.split()[1]
        elif re.fullmatch(r"seqalignatac_\w+\.py", first):
            program = first
            script = BIN / first
            sub = bin_subcommand(script) if script.is_file() else None
        else:
            continue
        toks: list[str] = []
        rest = raw.split(None, 2 if program == "seqalignatac" else 1)[2 if program == "seqalignatac" else 1 :]
        for word in re.split(r"(\$\{[^{}]*\})", rest[0] if rest else ""):
            var = re.fullmatch(r"\$\{\s*(\w+)\s*\}", word)
            if var and var.group(1) == "args":
                toks += ext_args.get(name, [])
            elif var and var.group(1) in defs and string_literals(defs[var.group(1)]) and "--" in defs[var.group(1)]:
                for lit in string_literals(defs[var.group(1)]):
                    toks += tokens_of(interpolations_to_values(lit))
            else:
                toks += tokens_of(interpolations_to_values(word))
        calls.append(Call(name, module, program, sub, toks))
    return calls


def click_command_for(call: Call) -> click.Command:
    if call.program == "seqalignatac" or call.subcommand:
        sub = call.subcommand
        if sub not in COMMANDS:
            raise LookupError(f"`seqalignatac {sub}` is not a command (known: {', '.join(sorted(COMMANDS))})")
        with click.Context(cli) as ctx:
            cmd = cli.get_command(ctx, sub)
        assert cmd is not None
        return cmd
    script = BIN / call.program
    if not script.is_file():
        raise LookupError(f"bin/{call.program} does not exist")
    spec = importlib.util.spec_from_file_location(f"_bin_{script.stem}", script)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cmd = getattr(mod, "main", None)
    if not isinstance(cmd, click.Command):
        raise LookupError(f"bin/{call.program} has neither SUBCOMMAND nor a click command `main`")
    return cmd


def check_call(call: Call, cmd: click.Command) -> list[str]:
    """Problems of one call: unknown options, missing required options/arguments, bad choices."""
    where = f"{call.module.relative_to(ROOT) if call.module.is_relative_to(ROOT) else call.module} ({call.process})"
    options: dict[str, click.Option] = {}
    for p in cmd.params:
        if isinstance(p, click.Option):
            for o in [*p.opts, *p.secondary_opts]:
                options[o] = p
    seen: set[str] = set()
    positionals = 0
    problems = []
    toks = call.tokens
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok.startswith("--"):
            opt, _, inline = tok.partition("=")
            p = options.get(opt)
            if p is None:
                problems.append(
                    f"{where}: `{call.program}` has no option {opt} ({cmd.name}: {', '.join(sorted(options))})"
                )
                i += 1
                continue
            seen.add(p.name or opt)
            if not (p.is_flag or p.count):
                value = inline or (toks[i + 1] if i + 1 < len(toks) else None)
                if value is None:
                    problems.append(f"{where}: {opt} needs a value")
                elif isinstance(p.type, click.Choice) and value != "VALUE" and "VALUE" not in value:
                    if value not in p.type.choices:
                        problems.append(f"{where}: {opt} {value!r} is not one of {list(p.type.choices)}")
                i += 0 if inline else 1
        else:
            positionals += 1
        i += 1
    for p in cmd.params:
        if isinstance(p, click.Option) and p.required and p.name not in seen:
            problems.append(f"{where}: `{call.program}` is missing the required option {p.opts[0]}")
        if isinstance(p, click.Argument) and p.required and positionals == 0:
            problems.append(f"{where}: `{call.program}` is missing its {p.name.upper()} argument(s)")
    return problems


def check_module_text(module_text: str, module: Path, config_text: str) -> list[str]:
    try:
        calls = calls_in_module(module_text, module, ext_args_by_process(config_text))
    except ValueError as e:
        return [str(e)]
    problems = []
    for call in calls:
        try:
            cmd = click_command_for(call)
        except LookupError as e:
            problems.append(f"{module}: {e}")
            continue
        problems += check_call(call, cmd)
    return problems


def module_files() -> list[Path]:
    return sorted(p for p in MODULES.glob("*/*/main.nf")) + sorted(p for p in MODULES.glob("*/main.nf"))


def seqalignatac_modules() -> list[Path]:
    return sorted(MODULES.glob("seqalignatac/*/main.nf"))


# --------------------------------------------------------------------------- the real modules


@pytest.mark.parametrize("module", seqalignatac_modules(), ids=lambda p: p.parent.name)
def test_module_calls_match_the_cli(module: Path) -> None:
    config = MODULES_CONFIG.read_text()
    text = module.read_text()
    calls = calls_in_module(text, module, ext_args_by_process(config))
    assert len(calls) == 1, f"{module}: a module runs exactly one seqalignatac step, found {len(calls)}"
    assert calls[0].program.startswith("seqalignatac_"), f"{module}: call the step through its bin/ script"
    problems = check_module_text(text, module, config)
    assert not problems, "\n".join(problems)


# The steps whose every option reaches the pipeline through one `--extra_<step>_args` string
# (nf-core/rnaseq's convention), and the few core parameters that also name an option.
EXTRA_ARGS = {
    "SEQALIGNATAC_PREPARE": "prepare",
    "SEQALIGNATAC_EXTRACT": "extract",
    "SEQALIGNATAC_EMBED": "embed",
    "SEQALIGNATAC_TRAIN": "train",
    "SEQALIGNATAC_ANNOTATE": "annotate",
    "SEQALIGNATAC_REPORT": "report",
}
CORE_PARAMS = {"extract_width", "embed_cache_dir", "train_method", "annotate_method"}


def _step_command(step: str) -> click.Command:
    with click.Context(cli) as ctx:
        cmd = cli.get_command(ctx, step)
    assert cmd is not None, step
    return cmd


def _schema_params() -> set[str]:
    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    return {name for group in schema["$defs"].values() for name in group["properties"]}


def test_every_step_takes_its_extra_args_and_no_option_is_mirrored() -> None:
    """Each step module passes `params.extra_<step>_args` as it is, and the schema has no
    parameter that mirrors one option of a step (beyond the few core ones)."""
    config = strip_comments(MODULES_CONFIG.read_text())
    params = _schema_params()
    for process, step in EXTRA_ARGS.items():
        m = re.search(rf"withName\s*:\s*'{process}'\s*\{{", config)
        assert m, f"conf/modules.config has no withName: '{process}' block"
        body = config[m.end() : matching_brace(config, m.end() - 1)]
        assert f"params.extra_{step}_args" in body, f"{process}: ext.args does not pass --extra_{step}_args"
        assert f"extra_{step}_args" in params, f"nextflow_schema.json lacks extra_{step}_args"
        cmd = _step_command(step)
        mirrored = {
            f"{step}_{p.opts[0].lstrip('-').replace('-', '_')}" for p in cmd.params if isinstance(p, click.Option)
        } & params
        assert mirrored <= CORE_PARAMS, (
            f"per-option parameters mirror `seqalignatac {step}`: {sorted(mirrored - CORE_PARAMS)}"
        )


def _extra_args_in_profiles() -> list[tuple[str, str, str]]:
    found = []
    for f in sorted((ROOT / "conf").glob("*.config")):
        for step, value in re.findall(r"extra_(\w+)_args\s*=\s*'([^']*)'", strip_comments(f.read_text())):
            found.append((f.name, step, value))
    return found


@pytest.mark.parametrize(("profile", "step", "value"), _extra_args_in_profiles())
def test_profile_extra_args_are_valid_options(profile: str, step: str, value: str) -> None:
    """The extra options a profile sets exist and parse (a typo would fail every task)."""
    cmd = _step_command(step)
    by_name = {o: p for p in cmd.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)}
    tokens = value.split()
    assert tokens, f"{profile}: empty extra_{step}_args"
    i = 0
    while i < len(tokens):
        opt = tokens[i]
        assert opt in by_name, f"{profile}: `seqalignatac {step}` has no option {opt}"
        p = by_name[opt]
        if p.is_flag:
            i += 1
            continue
        p.type.convert(tokens[i + 1], p, None)  # raises on a bad value
        i += 2


def test_params_used_in_modules_config_exist() -> None:
    """Every params.X in conf/modules.config is a pipeline parameter (no typo goes unnoticed)."""
    declared = set(re.findall(r"^\s{4}(\w+)\s*=", _params_block((ROOT / "nextflow.config").read_text()), re.M))
    used = set(re.findall(r"params\.(\w+)", strip_comments(MODULES_CONFIG.read_text())))
    assert used - declared == set(), f"conf/modules.config uses undeclared params: {sorted(used - declared)}"


def _params_block(config: str) -> str:
    text = strip_comments(config)
    m = re.search(r"^params\s*\{", text, re.M)
    assert m, "nextflow.config has no params { } block"
    return text[m.end() : matching_brace(text, m.end() - 1)]


def test_every_module_uses_a_bin_script_that_exists() -> None:
    for module in seqalignatac_modules():
        for call in calls_in_module(module.read_text(), module, {}):
            assert (BIN / call.program).is_file(), f"{module}: bin/{call.program} is missing"


# --------------------------------------------------------------------------- bin/ scripts


def _git_mode(path: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-s", "--", str(path.relative_to(ROOT))],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.split()[0] if out.strip() else None


@pytest.mark.parametrize("script", sorted(BIN.glob("*.py")), ids=lambda p: p.name)
def test_bin_script_is_executable_with_portable_shebang(script: Path) -> None:
    assert script.read_text().splitlines()[0] == "#!/usr/bin/env python3", f"{script}: wrong shebang"
    assert script.stat().st_mode & stat.S_IXUSR, f"{script}: not executable (chmod a+x)"
    mode = _git_mode(script)
    if mode is not None:  # tracked: the executable bit must be in git too (a fresh clone keeps it)
        assert mode == "100755", f"{script}: git mode {mode}; run `git update-index --chmod=+x {script.name}`"


@pytest.mark.parametrize("script", sorted(BIN.glob("*.py")), ids=lambda p: p.name)
def test_bin_script_wraps_a_real_command(script: Path) -> None:
    sub = bin_subcommand(script)
    if sub is not None:
        assert sub in COMMANDS, f"{script}: SUBCOMMAND {sub!r} is not a seqalignatac command"
    r = subprocess.run(
        [str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ.get('PATH', '')}"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--" in r.stdout and "Usage" in r.stdout


def test_fetch_model_script_fails_cleanly_offline(tmp_path: Path) -> None:
    script = BIN / "seqalignatac_fetch_model.py"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PATH": f"{Path(os.sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    r = subprocess.run(
        [str(script), "--model", "InstaDeepAI/not-a-model", "--outdir", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("Error: InstaDeepAI/not-a-model:") and "--nt_model" in r.stderr
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------- the checker catches mistakes

GOOD_MODULE = '''
process SEQALIGNATAC_EXTRACT {
    tag "${meta.id}"
    input:
    tuple val(meta), path(peaks), path(genome)
    output:
    tuple val(meta), path("extract/peaks.fa"), emit: fasta
    script:
    def args = task.ext.args ?: ''
    """
    mkdir -p extract
    seqalignatac_extract.py \\\\
        --peaks ${peaks} \\\\
        --fasta ${genome} \\\\
        --out extract/peaks.fa \\\\
        ${args}
    """
    stub:
    """
    touch extract/peaks.fa --not-checked-in-stub
    """
}
'''
GOOD_CONFIG = """
process {
    withName: 'SEQALIGNATAC_EXTRACT' {
        ext.args = { "--width ${params.extract_width}" }
    }
}
"""


def _check(module_text: str, config_text: str = GOOD_CONFIG) -> list[str]:
    return check_module_text(module_text, ROOT / "modules/local/seqalignatac/pp/sequences/main.nf", config_text)


def test_checker_accepts_a_good_module() -> None:
    assert _check(GOOD_MODULE) == []


def test_checker_rejects_an_unknown_option_in_the_module() -> None:
    broken = GOOD_MODULE.replace("--out extract/peaks.fa", "--output extract/peaks.fa")
    problems = _check(broken)
    assert any("has no option --output" in p for p in problems), problems
    assert any("missing the required option --out" in p for p in problems), problems


def test_checker_rejects_a_missing_required_option() -> None:
    broken = GOOD_MODULE.replace("        --fasta ${genome} \\\\\n", "")
    assert broken != GOOD_MODULE
    problems = _check(broken)
    assert problems == [
        "modules/local/seqalignatac/pp/sequences/main.nf (SEQALIGNATAC_EXTRACT): `seqalignatac_extract.py` is missing the required option --fasta"
    ]


def test_checker_rejects_an_unknown_option_in_ext_args() -> None:
    broken_config = GOOD_CONFIG.replace("--width", "--window")
    problems = _check(GOOD_MODULE, broken_config)
    assert any("has no option --window" in p for p in problems), problems


def test_checker_rejects_an_unknown_option_in_a_def_string() -> None:
    broken = GOOD_MODULE.replace(
        "def args = task.ext.args ?: ''",
        "def args = task.ext.args ?: ''\n    def opt = meta.x ? \"--center-on ${meta.x}\" : ''",
    ).replace("        ${args}", "        ${opt} \\\\\n        ${args}")
    problems = _check(broken)
    assert any("has no option --center-on" in p for p in problems), problems


def test_checker_rejects_a_bad_choice_and_an_unknown_subcommand() -> None:
    train = GOOD_MODULE.replace("process SEQALIGNATAC_EXTRACT", "process SEQALIGNATAC_TRAIN").replace(
        """seqalignatac_extract.py \\\\
        --peaks ${peaks} \\\\
        --fasta ${genome} \\\\
        --out extract/peaks.fa \\\\""",
        """seqalignatac train \\\\
        --accessibility a.h5ad \\\\
        --outdir train \\\\
        --method umap \\\\""",
    )
    problems = _check(train, "")
    assert any("--method 'umap' is not one of" in p for p in problems), problems
    unknown = train.replace("seqalignatac train", "seqalignatac trian")
    assert any("`seqalignatac trian` is not a command" in p for p in _check(unknown, ""))


def test_checker_rejects_a_missing_bin_script() -> None:
    broken = GOOD_MODULE.replace("seqalignatac_extract.py", "seqalignatac_extrct.py")
    assert any("bin/seqalignatac_extrct.py does not exist" in p for p in _check(broken))


def test_checker_catches_a_broken_copy_of_a_real_module() -> None:
    """The real EMBED module with one option renamed fails; unchanged it passes."""
    module = MODULES / "seqalignatac" / "embed" / "main.nf"
    text = module.read_text()
    config = MODULES_CONFIG.read_text()
    assert check_module_text(text, module, config) == []
    broken = text.replace("--shard ${shard}/${meta.shards}", "--shards ${shard}/${meta.shards}")
    assert broken != text
    assert any("has no option --shards" in p for p in check_module_text(broken, module, config))


def _fetch_main() -> click.Command:
    return click_command_for(Call("SEQALIGNATAC_FETCHMODEL", MODULES, "seqalignatac_fetch_model.py", None))


def test_fetch_model_script_downloads_into_outdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Success path with the Hub client replaced by a fake (no network in tests)."""
    import huggingface_hub
    from click.testing import CliRunner
    from huggingface_hub.utils import filter_repo_objects

    seen = {}
    # What a Nucleotide Transformer repository holds: remote code and TF/Flax copies besides the weights.
    repo_files = [
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "esm_config.py",
        "modeling_esm.py",
        "tf_model.h5",
        "flax_model.msgpack",
    ]

    def fake_snapshot_download(repo_id, revision, local_dir, cache_dir, allow_patterns):  # noqa: ANN001
        seen.update(repo_id=repo_id, revision=revision)
        Path(local_dir).mkdir(parents=True)
        for name in filter_repo_objects(repo_files, allow_patterns=allow_patterns):  # the hub client's own filter
            (Path(local_dir) / name).write_text("{}")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    r = CliRunner().invoke(_fetch_main(), ["--model", "org/nt", "--outdir", str(tmp_path / "m"), "--revision", "v2"])
    assert r.exit_code == 0, r.output
    assert seen["repo_id"] == "org/nt" and seen["revision"] == "v2"
    fetched = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert fetched == sorted(repo_files[:6]), fetched  # never the .py (remote code) nor TF/Flax weights

    def no_config(repo_id, revision, local_dir, cache_dir, allow_patterns):  # noqa: ANN001
        Path(local_dir).mkdir(parents=True)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_config)
    r = CliRunner().invoke(_fetch_main(), ["--model", "org/x", "--outdir", str(tmp_path / "n")])
    assert r.exit_code == 2 and "no config.json" in r.output


def test_fetch_model_script_is_a_thin_wrapper() -> None:
    """The download policy lives once, in seqalignatac.embed.hub; the bin/ script only parses options."""
    text = (BIN / "seqalignatac_fetch_model.py").read_text()
    assert "from seqalignatac.embed.hub import fetch_model" in text
    assert "snapshot_download" not in text and "_PATTERNS" not in text


# --------------------------------------------------------------------------- --settings reaches the commands


def render_command(module_text: str, inputs: dict[str, str | None], ext_args: str = "") -> tuple[list[str], str]:
    """The tokens of a module's step call as Nextflow renders them, and the shell lines before it.

    A small renderer for the Groovy of our script blocks: `def x = task.ext.args ?: ''` (ext_args),
    `def x = COND ? "..." : '...'` with COND an input name (None or '' for `[]`, falsy as in Groovy)
    or `task.accelerator` (false here), and `${name}` / `${task.cpus}` interpolations.
    """
    block = script_block(module_text)
    values: dict[str, str] = {k: v or "" for k, v in inputs.items()} | {"task.cpus": "2"}

    def interpolate(text: str) -> str:
        def value(m: re.Match[str]) -> str:
            name = m.group(1).strip()
            assert name in values, f"renderer: no value for the interpolation of {name!r}"
            return values[name]

        return re.sub(r"\$\{([^{}]*)\}", value, text)

    for name, expr in re.findall(r"^\s*def\s+(\w+)\s*=\s*(.+?)\s*$", block, re.M):
        if expr == "task.ext.args ?: ''":
            values[name] = ext_args
            continue
        m = re.fullmatch(r"([\w.]+)\s*\?\s*(\"[^\"]*\"|'[^']*')\s*:\s*(\"[^\"]*\"|'[^']*')", expr)
        assert m, f"renderer: cannot render `def {name} = {expr}`"
        cond = values.get(m.group(1), "") if m.group(1) != "task.accelerator" else ""
        values[name] = interpolate((m.group(2) if cond else m.group(3))[1:-1])
    shell = re.search(r'"""(.*?)"""', block, re.S).group(1).replace("\\\\\n", " ")
    before = []
    for line in shell.splitlines():
        words = line.split()
        if words and re.fullmatch(r"seqalignatac_\w+\.py", words[0]):
            return shlex.split(interpolate(line))[1:], "\n".join(before)
        before.append(interpolate(line).replace("\\\\", "\\"))
    raise AssertionError("renderer: no seqalignatac_*.py call in the script block")


def _config_files(step: str, tokens: list[str]) -> list[str]:
    """The --config values click's own parser sees in `tokens`, in order."""
    cmd = _step_command(step)
    parser = cmd.make_parser(click.Context(cmd))
    opts, _args, _order = parser.parse_args(list(tokens))
    return list(opts.get("config_path") or [])


# What Nextflow renders for `path(settings, stageAs: 'user_settings/*')` given `--settings my.toml`.
STAGED_SETTINGS = "user_settings/my.toml"


@pytest.mark.parametrize(
    ("embeddings", "settings", "expected"),
    [
        ("embeddings.h5", STAGED_SETTINGS, ["train_settings.toml", STAGED_SETTINGS]),
        ("embeddings.h5", None, ["train_settings.toml"]),
        (None, STAGED_SETTINGS, [STAGED_SETTINGS]),  # --train_method lsi: no module file
        (None, None, []),
    ],
)
def test_train_module_passes_the_settings_file_after_its_own(
    tmp_path: Path, embeddings: str | None, settings: str | None, expected: list[str]
) -> None:
    """`--settings` reaches `seqalignatac train` as a --config after the module's own file, so a
    key the user sets (even missing_embeddings) overrides the module's; --extra_train_args come last."""
    from seqalignatac.io.settings import read_settings
    from seqalignatac.models.stage1.options import TRAIN_SETTINGS

    module = MODULES / "seqalignatac" / "train" / "main.nf"
    ext = "--method nt --seed 0"
    tokens, before = render_command(
        module.read_text(),
        {"accessibility": "accessibility.h5ad", "embeddings": embeddings, "settings": settings},
        ext,
    )
    assert _config_files("train", tokens) == expected
    assert tokens[-2:] == ext.split()[-2:]
    assert _config_files("train", [*tokens, "--config", "extra.toml"])[-1] == "extra.toml"
    if "train_settings.toml" not in expected:
        return
    # The files as the task has them: the module's (its printf line, run by bash) and the user's.
    subprocess.run(["bash", "-c", before], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert read_settings(tmp_path / "train_settings.toml", "train", TRAIN_SETTINGS) == {"missing_embeddings": "drop"}
    if settings:
        (tmp_path / settings).parent.mkdir()
        (tmp_path / settings).write_text('[train]\nmissing_embeddings = "error"\nlr = 0.005\n\n[annotate]\nk = 20\n')
        merged = read_settings([tmp_path / f for f in expected], "train", TRAIN_SETTINGS)
        assert merged == {"missing_embeddings": "error", "lr": 0.005}


@pytest.mark.parametrize("settings", [STAGED_SETTINGS, None])
def test_annotate_module_passes_the_settings_file(settings: str | None) -> None:
    module = MODULES / "seqalignatac" / "annotate" / "main.nf"
    tokens, _ = render_command(
        module.read_text(), {"cells": "cell_embeddings.h5ad", "settings": settings}, "--method gda --seed 0"
    )
    assert _config_files("annotate", tokens) == ([settings] if settings else [])


def test_the_workflow_stages_params_settings_into_train_and_annotate() -> None:
    """params.settings -> one value channel ([] when unset) -> the settings input of both modules."""
    main = strip_comments((ROOT / "main.nf").read_text())
    wf = strip_comments((ROOT / "workflows" / "seqalignatac.nf").read_text())
    assert "params.settings" in main
    assert re.search(
        r"settings\s*\?\s*channel\.value\(file\(settings, checkIfExists: true\)\)\s*:\s*channel\.value\(\[\]\)", wf
    )
    assert "SEQALIGNATAC_TRAIN(ch_train_in, ch_settings)" in wf
    assert "SEQALIGNATAC_ANNOTATE(SEQALIGNATAC_TRAIN.out.cells, ch_settings)" in wf
    for step in ("train", "annotate"):
        text = strip_comments((MODULES / "seqalignatac" / step / "main.nf").read_text())
        assert re.search(r"^\s*path\(settings, stageAs: 'user_settings/\*'\)\s*$", text, re.M), step


def test_the_pipeline_tests_settings_file_is_valid() -> None:
    """tests/settings.toml (tests/default.nf.test's --settings) holds real keys of both tables."""
    from seqalignatac.io.settings import read_settings
    from seqalignatac.models.stage1.options import TRAIN_SETTINGS
    from seqalignatac.models.stage2.options import FILE_SETTINGS

    path = ROOT / "tests" / "settings.toml"
    assert read_settings(path, "train", TRAIN_SETTINGS)
    assert read_settings(path, "annotate", FILE_SETTINGS)
