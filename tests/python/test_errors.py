"""The package's own exceptions (no click) and how the CLI shows them: one line, the same exit status."""

import subprocess
import sys
import types

import click
import pytest
from click.testing import CliRunner

from seqalignatac.cli.main import COMMANDS, cli
from seqalignatac.errors import InputError, Interrupted, OutputError, SeqAlignATACError
from seqalignatac.io.locks import FolderBusy


def test_the_library_raises_plain_exceptions():
    for error in (InputError, OutputError, Interrupted, FolderBusy):
        assert issubclass(error, SeqAlignATACError) and not issubclass(error, click.ClickException)
    # Python callers need no click to import or catch them
    code = "import sys; sys.modules['click'] = None; from seqalignatac.errors import InputError; print(InputError('x'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "x\n", r.stderr


def test_message_names_the_path():
    e = InputError("has no X matrix", "data/a.h5ad")
    assert str(e) == e.format_message() == "data/a.h5ad: has no X matrix"
    assert (e.path, e.problem, e.exit_code) == ("data/a.h5ad", "has no X matrix", 2)


@pytest.fixture
def raising_command(monkeypatch):
    """Register a `seqalignatac boom` command that raises the given error."""

    def register(error: Exception) -> None:
        @click.command("boom")
        def boom() -> None:
            raise error

        module = types.ModuleType("seqalignatac_test_boom")
        module.boom = boom
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setitem(COMMANDS, "boom", (module.__name__, "boom", "raises"))

    return register


@pytest.mark.parametrize(
    "error, line, status",
    [
        (InputError("has no X matrix", "a.h5ad"), "Error: a.h5ad: has no X matrix", 2),
        (FolderBusy("is in use by another run", "out/"), "Error: out/: is in use by another run", 1),
        (OutputError("out/x.csv: no space left on device"), "Error: out/x.csv: no space left on device", 1),
        (Interrupted("Interrupted (Ctrl-C); kept: nothing"), "Interrupted (Ctrl-C); kept: nothing", 130),
    ],
)
def test_cli_shows_one_line_and_the_exit_status(raising_command, error, line, status):
    raising_command(error)
    r = CliRunner().invoke(cli, ["boom"])
    assert r.exit_code == status
    assert r.output == line + "\n"
