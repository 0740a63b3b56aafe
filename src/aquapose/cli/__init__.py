"""The ``aquapose`` command line. Each command lives in its own module here."""

from aquapose.cli import validate  # noqa: F401  (registers the command)
from aquapose.cli._app import app, main

# Stage commands register themselves on `app` when imported (chain order).
# -- commands --
from aquapose.cli import synth  # noqa: F401,E402
from aquapose.cli import detect  # noqa: F401,E402  (detect, eval-detections)
from aquapose.cli import pseudolabel  # noqa: F401,E402
from aquapose.cli import ls  # noqa: F401,E402  (ls export/import/push/pull)
from aquapose.cli import train  # noqa: F401,E402  (train, evaluate)
from aquapose.cli import segment  # noqa: F401,E402
from aquapose.cli import demo  # noqa: F401,E402

__all__ = ["app", "main"]
