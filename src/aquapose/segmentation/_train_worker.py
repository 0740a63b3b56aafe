"""The process torchrun starts for ``launch_training``: ``train(TrainConfig from JSON)``.

``python -m torch.distributed.run ... -m aquapose.segmentation._train_worker CONFIG.json``;
no module imports this one (``-m`` would run a second copy of an imported module).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    from aquapose.segmentation.training import TrainConfig, train

    if len(argv) != 1:
        raise SystemExit(
            "usage: torchrun ... -m aquapose.segmentation._train_worker TRAIN_CONFIG.json"
        )
    config = TrainConfig.from_dict(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    train(config)


if __name__ == "__main__":
    main(sys.argv[1:])
