"""``--config FILE.yaml`` and ``--print-config`` for every command.

Each command is bound to one config dataclass (its stage's). The settings of a run
come from, later winning: the dataclass defaults, the YAML file, then the flags given
on the command line (a flag left at its default does not override the file).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import typer

from aquapose.segmentation.io.config import (
    config_defaults,
    config_yaml,
    make_config,
    read_config_file,
)

T = TypeVar("T")

#: Where a value the user gave comes from (click's ParameterSource names; typer may
#: vendor its own click, so the enum is compared by name).
_FROM_USER = ("COMMANDLINE", "ENVIRONMENT")


def config_option() -> Any:
    """The ``--config FILE`` option."""
    return typer.Option(
        None,
        "--config",
        help="YAML file setting any field of this command's config (all of them: "
        "--print-config); flags given on the command line win over it.",
        dir_okay=False,
    )


def print_config_option(cls: type | str) -> Any:
    """The eager ``--print-config`` option: print ``cls``'s defaults as YAML and exit.

    ``cls`` may be given as ``"module:Name"``, imported only when asked for (a config
    class in a torch module must not slow down ``--help``).
    """

    def show(value: bool) -> None:
        if value:
            config_cls = cls
            if isinstance(config_cls, str):
                module, _, name = config_cls.partition(":")
                config_cls = getattr(importlib.import_module(module), name)
            typer.echo(config_yaml(config_defaults(config_cls)), nl=False)
            raise typer.Exit()

    return typer.Option(
        False,
        "--print-config",
        is_eager=True,
        callback=show,
        help="Print every setting of this command with its default, as YAML "
        "(a starting point for --config), and exit.",
    )


def resolve_config(
    cls: type[T],
    ctx: typer.Context,
    config_file: Path | None,
    flags: Mapping[str, str | tuple[str, ...]],
    base: T | None = None,
) -> T:
    """The command's config: defaults (or ``base``) < ``config_file`` < flags given.

    Args:
        flags: command-line parameter name -> dotted config field(s) it sets
            (e.g. ``{"scale": "detector.scale"}``).
    """
    layers: list[dict[str, Any]] = []
    if config_file is not None:
        layers.append(read_config_file(config_file))
    given: dict[str, Any] = {}
    for param, fields in flags.items():
        given_by = ctx.get_parameter_source(param)
        if given_by is None or given_by.name not in _FROM_USER:
            continue
        for dotted in (fields,) if isinstance(fields, str) else fields:
            *parents, leaf = dotted.split(".")
            node = given
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = ctx.params[param]
    layers.append(given)
    source = str(config_file) if config_file is not None else "command line"
    return make_config(cls, *layers, source=source, base=base)
