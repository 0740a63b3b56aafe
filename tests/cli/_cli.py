"""``run_cli``: one ``aquapose`` command in this process, as the tests in this folder call it."""

from __future__ import annotations

import pytest

from aquapose.cli import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``aquapose ARGS``."""
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else int(code is not None)), out.out, out.err
