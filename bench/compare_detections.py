"""Check that a change to the detector keeps its detections bit-identical.

Dump every detection (box, score, COCO RLE of the frame-space blob mask) that
``detect_video`` gives on some clips, once with each version of the code (whichever
``aquapose`` is on ``PYTHONPATH``), then compare the two dumps::

    PYTHONPATH=/path/to/main/src python bench/compare_detections.py dump old.json a.mp4 b.mp4
    PYTHONPATH=src python bench/compare_detections.py dump new.json a.mp4 b.mp4
    python bench/compare_detections.py compare old.json new.json

``--scale 0.5`` dumps with ``DetectorConfig(scale=0.5)``. The RLE is pycocotools'
encoding of the full-frame mask (``Detection.blob_mask``), so it does not depend on how
a version stores the blob. Exit status 1 when the dumps differ.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils


def dump(out: Path, clips: list[str], scale: float) -> None:
    import aquapose
    from aquapose.segmentation.detector import DetectorConfig, MOG2Detector, detect_video

    result: dict = {"aquapose": aquapose.__file__, "scale": scale, "clips": {}}
    for clip in clips:
        det = MOG2Detector(DetectorConfig(scale=scale))
        frames = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for index, _frame, found in detect_video(clip, detector=det):
                records = []
                for d in found:
                    full = np.asfortranarray(d.blob_mask.astype(np.uint8))
                    rle = mask_utils.encode(full)["counts"].decode("ascii")
                    records.append([d.box_xyxy.tolist(), d.score, rle])
                frames.append([index, records])
        result["clips"][clip] = {"frames": frames, "rejected": det.rejected_frames}
        count = sum(len(r) for _, r in frames)
        print(f"{clip}: {len(frames)} frames, {count} detections", file=sys.stderr)
    out.write_text(json.dumps(result))


def compare(old_path: Path, new_path: Path) -> bool:
    old, new = json.loads(old_path.read_text()), json.loads(new_path.read_text())
    print(f"old: {old['aquapose']}\nnew: {new['aquapose']}")
    same_all = old["clips"].keys() == new["clips"].keys()
    for clip, a in old["clips"].items():
        b = new["clips"].get(clip)
        same = a == b
        same_all &= same
        count = sum(len(r) for _, r in a["frames"])
        print(f"{clip}: {len(a['frames'])} frames, {count} detections, identical={same}")
    print("ALL IDENTICAL" if same_all else "DIFFERENCES")
    return same_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="dump the detections of some clips")
    d.add_argument("out", type=Path)
    d.add_argument("clips", nargs="+")
    d.add_argument("--scale", type=float, default=1.0)
    c = sub.add_parser("compare", help="compare two dumps")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.out, args.clips, args.scale)
        return 0
    return 0 if compare(args.old, args.new) else 1


if __name__ == "__main__":
    sys.exit(main())
