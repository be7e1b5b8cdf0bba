"""Assertions shared by the CLI bad-input tests."""


def assert_one_line_error(res, *needles) -> str:
    """A user error: exit 2, no traceback, the last line is `Error: ...` holding every needle."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("Error: ")
    for n in needles:
        assert n in line, line
    return line
