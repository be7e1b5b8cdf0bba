"""One progress switch: --progress/--no-progress on every command that draws bars."""

import pytest
from click.testing import CliRunner

from seqalignatac.cli.main import cli

COMMANDS_WITH_BARS = ("embed", "train", "annotate", "run")


def _option_names(command: str) -> dict[str, bool]:
    """Each option string of ``command`` -> whether it is hidden."""
    cmd = cli.get_command(None, command)
    return {name: p.hidden for p in cmd.params for name in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("command", COMMANDS_WITH_BARS)
def test_every_command_has_the_same_switch(command):
    names = _option_names(command)
    assert names.get("--progress") is False and names.get("--no-progress") is False, command


def test_quiet_progress_is_a_hidden_alias():
    assert _option_names("annotate")["--quiet-progress"] is True
    assert "--quiet-progress" not in CliRunner().invoke(cli, ["annotate", "--help"]).output


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([], None),
        (["--progress"], True),
        (["--no-progress"], False),
        (["--quiet-progress"], False),
        (["--progress", "--quiet-progress"], False),
    ],
)
def test_annotate_passes_the_switch_on(monkeypatch, tmp_path, flags, expected):
    from seqalignatac.models.stage2 import api, outputs

    seen = {}

    def stop(*args, progress, **kwargs):
        seen["progress"] = progress
        raise SystemExit(0)  # the switch is all this test checks; skip the work

    monkeypatch.setattr(outputs, "read_cells", lambda path: None)
    monkeypatch.setattr(api, "annotate_full", stop)
    r = CliRunner().invoke(
        cli, ["annotate", "--cells", str(tmp_path / "c.h5ad"), "--outdir", str(tmp_path / "o"), *flags]
    )
    assert r.exit_code == 0, r.output
    assert seen == {"progress": expected}
