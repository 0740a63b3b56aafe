"""The ``aquapose`` command line. Each command lives in its own module here."""

# Command modules register their commands on `app` when imported (chain order).
from aquapose.cli import (  # noqa: F401
    demo,
    detect,  # detect, eval-detections
    ls,  # ls export/import/push/pull
    pseudolabel,
    segment,
    synth,
    train,  # train, evaluate
    validate,
)
from aquapose.cli._app import app, main

__all__ = ["app", "main"]
