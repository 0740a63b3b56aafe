"""The ``aquapose`` Typer app, its error handling and shared console helpers.

Command modules import ``app`` from here and add their commands; they import
heavy libraries (torch, ...) inside the command functions so ``--help`` is fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from aquapose import __version__

app = typer.Typer(
    name="aquapose",
    help=(
        "AquaPose: per-fish masks from multi-camera aquarium video.\n\n"
        "The chain: synth (built-in data) -> detect -> pseudolabel -> ls (review in "
        "Label Studio) -> train -> evaluate -> segment. Run `aquapose COMMAND --help` "
        "for each step."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

#: Messages and progress go to stderr; stdout carries only results.
console = Console(stderr=True)
_state = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"aquapose {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback when a command fails."
    ),
) -> None:
    _state["debug"] = debug


def progress_bar(transient: bool = False) -> Progress:
    """A rich progress bar on stderr: ``with progress_bar() as p: task = p.add_task(...)``."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


@contextmanager
def progress_tasks(
    label: Callable[[str], str] = str, transient: bool = False
) -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(task, done, total)`` callback for the stage functions: one bar per task.

    The bars appear with the first call, so an error raised before any work is
    printed alone. ``total`` <= 0 means unknown.
    """
    bar = progress_bar(transient)
    tasks: dict[str, TaskID] = {}

    def update(name: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()
        if name not in tasks:
            tasks[name] = bar.add_task(label(name), total=total if total > 0 else None)
        bar.update(tasks[name], completed=done)

    try:
        yield update
    finally:
        if tasks:
            bar.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI; an error becomes one line on stderr and exit code 1."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="aquapose")
    except Exception as err:  # noqa: BLE001 - the CLI's last line of defence
        if _state["debug"]:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        console.print(
            f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True
        )
        console.print("(run with --debug for the full traceback)", style="dim")
        sys.exit(1)
