"""The ``aquapose`` command line. Each command lives in its own module here."""

# Stage commands register themselves on `app` when imported (chain order).
# -- commands --
from aquapose.cli import (
    demo,  # noqa: F401,E402
    detect,  # noqa: F401,E402  (detect, eval-detections)
    ls,  # noqa: F401,E402  (ls export/import/push/pull)
    pseudolabel,  # noqa: F401,E402
    segment,  # noqa: F401,E402
    synth,  # noqa: F401,E402
    train,  # noqa: F401,E402  (train, evaluate)
    validate,  # noqa: F401  (registers the command)
)
from aquapose.cli._app import app, main

__all__ = ["app", "main"]
