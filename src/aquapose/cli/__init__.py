"""The ``aquapose`` command line. Each command lives in its own module here."""

from aquapose.cli import validate  # noqa: F401  (registers the command)
from aquapose.cli._app import app, main

# Stage commands register themselves on `app` when imported (chain order).
# -- commands --

__all__ = ["app", "main"]
