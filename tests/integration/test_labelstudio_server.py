"""The Label Studio round trip against a real server (SQLite, 127.0.0.1).

Push frames with predictions, review through the API (an accepted prediction, an edited
one, a cancelled task, a frame marked empty, a task annotated twice, one nobody touched),
pull the export and check what came back, pixel for pixel.

The server: ``AQUAPOSE_LS_URL`` / ``AQUAPOSE_LS_TOKEN`` / ``AQUAPOSE_LS_DOCUMENT_ROOT``
(``.ci/run`` starts one with ``scripts/labelstudio_server.sh``). Without them, the test
starts its own server when ``.venv-ls`` exists (``scripts/labelstudio_server.sh install``),
else it skips, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from aquapose.segmentation.io.brush_rle import mask_to_brush_rle
from aquapose.segmentation.io.coco import read_coco, write_coco
from aquapose.segmentation.io.files import read_image, write_image
from aquapose.segmentation.masks import encode_rle, mask_iou, mask_to_box_xyxy
from aquapose.segmentation.types import AnnotatedFrame, Instance

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "labelstudio_server.sh"
AQUARIUM = REPO / ".." / "shared" / "data" / "aquarium-boxes"


def _answers(url: str, token: str) -> bool:
    request = urllib.request.Request(
        url + "/api/current-user/whoami", headers={"Authorization": f"Token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    """url, token, root (the server's local-files document root)."""
    env = {k: os.environ[k] for k in os.environ if k.startswith("AQUAPOSE_LS_")}
    started = False
    if "AQUAPOSE_LS_URL" not in env and (REPO / ".venv-ls" / "bin" / "label-studio").exists():
        run = subprocess.run(
            [str(SCRIPT), "start"], capture_output=True, text=True, timeout=600, check=False
        )
        if run.returncode != 0:
            pytest.fail(f"could not start Label Studio: {run.stderr[-2000:]}")
        for line in run.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
        started = True
    if "AQUAPOSE_LS_URL" not in env:
        message = (
            "no Label Studio server: set AQUAPOSE_LS_URL/AQUAPOSE_LS_TOKEN/"
            'AQUAPOSE_LS_DOCUMENT_ROOT (eval "$(scripts/labelstudio_server.sh start)") or run '
            "scripts/labelstudio_server.sh install"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        url, token = env["AQUAPOSE_LS_URL"], env.get("AQUAPOSE_LS_TOKEN", "")
        if not _answers(url, token):
            pytest.fail(f"Label Studio at {url} does not answer (or refuses the token)")
        if not env.get("AQUAPOSE_LS_DOCUMENT_ROOT"):
            pytest.fail("AQUAPOSE_LS_DOCUMENT_ROOT (the server's local-files root) is not set")
        yield {"url": url, "token": token, "root": env["AQUAPOSE_LS_DOCUMENT_ROOT"]}
    finally:
        if started:
            subprocess.run([str(SCRIPT), "stop"], env={**os.environ, **env}, check=False)


def _ellipse(height: int, width: int, center: tuple[int, int], axes: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, center, axes, 20, 0, 360, 1, -1)
    return mask.astype(bool)


def _instances(masks: list[np.ndarray], first_id: int = 0) -> tuple[Instance, ...]:
    return tuple(
        Instance(mask_to_box_xyxy(m), encode_rle(m), score=0.9, fish_id=first_id + k)
        for k, m in enumerate(masks)
    )


def _frames(folder: Path) -> list[AnnotatedFrame]:
    """Two real aquarium frames (ellipse masks in their VOC boxes) and four synthetic ones."""
    frames = []
    for i, name in enumerate(["000001", "000002"]):
        shutil.copy(AQUARIUM / "images" / f"{name}.jpg", folder / f"{name}.jpg")
        height, width = read_image(folder / f"{name}.jpg").shape[:2]
        masks = []
        for obj in ET.parse(AQUARIUM / "annotations" / f"{name}.xml").getroot().iter("object"):
            box = [
                float(obj.findtext(f"bndbox/{k}", "0")) for k in ("xmin", "ymin", "xmax", "ymax")
            ]
            center = (int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2))
            axes = (max(int((box[2] - box[0]) / 2) - 2, 1), max(int((box[3] - box[1]) / 2) - 2, 1))
            masks.append(_ellipse(height, width, center, axes))
        frames.append(
            AnnotatedFrame(i + 1, f"{name}.jpg", width, height, "handheld", i, "handheld.mp4",
                           _instances(masks, 10 * i))
        )  # fmt: skip
    rng = np.random.default_rng(0)
    for i in range(2, 6):
        write_image(folder / f"syn{i}.png", rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
        masks = [_ellipse(60, 80, (20 + 10 * i, 30), (9, 4)), _ellipse(60, 80, (40, 12), (6, 3))]
        frames.append(
            AnnotatedFrame(i + 1, f"syn{i}.png", 80, 60, "cam0", 10 * i, "cam0.mp4",
                           _instances(masks, 10 * i))
        )  # fmt: skip
    return frames


def _brush(mask: np.ndarray, region_id: str) -> dict[str, Any]:
    height, width = mask.shape
    return {
        "id": region_id,
        "from_name": "mask",
        "to_name": "image",
        "type": "brushlabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask_to_brush_rle(mask), "brushlabels": ["fish"]},
    }


def test_push_review_pull_round_trip(server: dict[str, str], tmp_path: Path) -> None:
    from label_studio_sdk import LabelStudio

    from aquapose.segmentation.io.labelstudio_server import (
        pull_from_label_studio,
        push_to_label_studio,
    )

    started = time.monotonic()
    url, token, root = server["url"], server["token"], Path(server["root"])
    images = root / f"aquapose-test-{uuid.uuid4().hex[:8]}"
    images.mkdir(parents=True)
    try:
        frames = _frames(images)
        coco = write_coco(frames, images / "pseudo.json")
        project = f"aquapose test {images.name}"
        push = push_to_label_studio(coco, url=url, project=project, image_root=root, api_key=token)
        assert push.project_created and (push.imported, push.already_there) == (6, 0)
        assert push.storage_path == str(images)
        again = push_to_label_studio(coco, url=url, project=project, image_root=root, api_key=token)
        assert (again.project_id, again.project_created) == (push.project_id, False)
        assert (again.imported, again.already_there) == (0, 6)

        client = LabelStudio(base_url=url, api_key=token)
        tasks = {
            t.data["image_id"]: t for t in client.tasks.list(project=push.project_id, fields="all")
        }
        assert sorted(tasks) == [1, 2, 3, 4, 5, 6]
        # The server serves the frames at the URLs we wrote (local-files storage registered).
        request = urllib.request.Request(
            url + tasks[1].data["image"], headers={"Authorization": f"Token {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.read() == (images / "000001.jpg").read_bytes()

        def predicted(image_id: int) -> list[dict[str, Any]]:
            prediction = tasks[image_id].predictions[0]
            result = prediction["result"] if isinstance(prediction, dict) else prediction.result
            return [dict(r) for r in result]

        # 1: accepted as predicted.
        client.annotations.create(id=tasks[1].id, result=predicted(1), was_cancelled=False)
        # 2: fish 0 repainted, fish 1 deleted, one fish added by the reviewer.
        original2 = [inst.mask() for inst in frames[1].instances]
        repainted = original2[0].copy()
        repainted[:, : repainted.shape[1] // 2] = False
        repainted[200:230, 100:180] = True
        added = _ellipse(540, 960, (700, 480), (40, 12))
        result2 = predicted(2)
        result2[0]["value"] = {**result2[0]["value"], "rle": mask_to_brush_rle(repainted)}
        result2 = [result2[0], *result2[2:], _brush(added, "reviewer-1")]
        client.annotations.create(id=tasks[2].id, result=result2, was_cancelled=False)
        # 3: skipped. 4: reviewed, no fish. 6: nobody looked at it.
        client.annotations.create(id=tasks[3].id, result=[], was_cancelled=True)
        client.annotations.create(id=tasks[4].id, result=[], was_cancelled=False)
        # 5: annotated twice; the newer one (fish 1 grown) wins.
        client.annotations.create(id=tasks[5].id, result=predicted(5), was_cancelled=False)
        grown = cv2.dilate(frames[4].instances[1].mask().astype(np.uint8), np.ones((3, 3))) > 0
        result5 = predicted(5)
        result5[1]["value"] = {**result5[1]["value"], "rle": mask_to_brush_rle(grown)}
        time.sleep(0.05)
        client.annotations.create(id=tasks[5].id, result=result5, was_cancelled=False)

        out = tmp_path / "reviewed.json"
        report = pull_from_label_studio(
            url=url,
            project=project,
            out_coco=out,
            image_root=root,
            save_export=tmp_path / "export.json",
            api_key=token,
        )
        assert (report.tasks, report.imported, report.cancelled, report.unreviewed) == (6, 4, 1, 1)
        assert (report.empty, report.ignored_annotations, report.empty_regions) == (1, 1, 0)

        got = {f.image_id: f for f in read_coco(out)}
        assert sorted(got) == [1, 2, 4, 5]
        for image_id, frame in got.items():
            source = frames[image_id - 1]
            assert (
                frame.resolve_image(out.parent).resolve() == (images / source.image_path).resolve()
            )
            assert (frame.camera_id, frame.frame_index) == (source.camera_id, source.frame_index)
            assert all(inst.score is None for inst in frame.instances)

        def masks(frame: AnnotatedFrame) -> list[np.ndarray]:
            return [inst.mask() for inst in frame.instances]

        expected = {
            1: [inst.mask() for inst in frames[0].instances],
            2: [repainted, *original2[2:], added],
            4: [],
            5: [frames[4].instances[0].mask(), grown],
        }
        for image_id, want in expected.items():
            have = masks(got[image_id])
            assert len(have) == len(want), image_id
            for a, b in zip(have, want, strict=True):
                assert np.array_equal(a, b), f"image {image_id}: IoU {mask_iou(a, b):.4f}"
        fish_ids = [inst.fish_id for inst in got[2].instances]
        assert fish_ids == [10, *range(12, 10 + len(original2)), None]
        assert time.monotonic() - started < 120
    finally:
        shutil.rmtree(images, ignore_errors=True)


def test_polygon_project_round_trip(server: dict[str, str], tmp_path: Path) -> None:
    from label_studio_sdk import LabelStudio

    from aquapose.segmentation.io.labelstudio_server import (
        pull_from_label_studio,
        push_to_label_studio,
    )

    url, token, root = server["url"], server["token"], Path(server["root"])
    images = root / f"aquapose-poly-{uuid.uuid4().hex[:8]}"
    images.mkdir(parents=True)
    try:
        frames = _frames(images)[:1]
        coco = write_coco(frames, images / "pseudo.json")
        project = f"aquapose polygons {images.name}"
        push = push_to_label_studio(
            coco, url=url, project=project, image_root=root, polygons=True, api_key=token
        )
        client = LabelStudio(base_url=url, api_key=token)
        (task,) = list(client.tasks.list(project=push.project_id, fields="all"))
        prediction = task.predictions[0]
        result = prediction["result"] if isinstance(prediction, dict) else prediction.result
        assert {r["type"] for r in result} == {"polygonlabels"}
        client.annotations.create(id=task.id, result=[dict(r) for r in result])
        report = pull_from_label_studio(
            url=url, project=project, out_coco=tmp_path / "r.json", image_root=root, api_key=token
        )
        (frame,) = report.frames
        assert len(frame.instances) == len(frames[0].instances)
        for a, b in zip(frame.instances, frames[0].instances, strict=True):
            assert mask_iou(a.mask(), b.mask()) >= 0.98
    finally:
        shutil.rmtree(images, ignore_errors=True)
