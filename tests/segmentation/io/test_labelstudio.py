"""Label Studio adapter: exact brush round trips (synthetic and real images), polygon round
trips, the import policy (cancelled, several annotations, empty frames) and bad exports."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from aquapose.segmentation.io.brush_rle import mask_to_brush_rle
from aquapose.segmentation.io.coco import read_coco, write_coco
from aquapose.segmentation.io.files import read_image, write_image
from aquapose.segmentation.io.labelstudio import (
    LabelStudioFormatError,
    export_to_label_studio,
    exported_task,
    import_from_label_studio,
    labeling_config,
)
from aquapose.segmentation.masks import encode_rle, mask_iou, mask_to_box_xyxy
from aquapose.segmentation.types import AnnotatedFrame, Instance

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
AQUARIUM = SHARED_DATA / "aquarium-boxes"
SUIM = SHARED_DATA / "suim-fish"


# ----------------------------------------------------------------------------- helpers


def _blob_mask(rng: np.random.Generator, height: int, width: int, holes: bool) -> np.ndarray:
    """An irregular fish-like blob: a rotated ellipse plus a tail, a ragged edge and, with
    ``holes``, a few pixels missing inside (polygons cannot hold those; brush must)."""
    mask = np.zeros((height, width), np.uint8)
    cx, cy = rng.integers(15, width - 15), rng.integers(12, height - 12)
    axes = (int(rng.integers(5, 12)), int(rng.integers(3, 6)))
    angle = float(rng.uniform(0, 180))
    cv2.ellipse(mask, (int(cx), int(cy)), axes, angle, 0, 360, 1, -1)
    tail = np.array([[cx, cy], [cx + 14, cy - 5], [cx + 14, cy + 5]], np.int32)
    cv2.fillPoly(mask, [tail], 1)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    edge = mask.astype(bool) & ~cv2.erode(mask, cross).astype(bool)
    drop = rng.random(mask.shape) < 0.2
    mask[(edge if not holes else mask.astype(bool)) & drop] = 0
    return mask.astype(bool)


def _frame(
    image_id: int, path: str, masks: list[np.ndarray], camera: str = "cam0"
) -> AnnotatedFrame:
    height, width = masks[0].shape if masks else (40, 60)
    instances = [
        Instance(
            box_xyxy=mask_to_box_xyxy(m),
            rle=encode_rle(m),
            score=0.9 - 0.05 * (k % 10),
            fish_id=10 + k,
            extra={"stationary": k == 0},
        )
        for k, m in enumerate(masks)
    ]
    return AnnotatedFrame(
        image_id, path, width, height, camera, 3 * image_id, "cam0.mp4", instances, {"tank": "A"}
    )


def _synthetic_coco(
    tmp_path: Path, rng: np.random.Generator, n_frames: int = 2, holes: bool = True
) -> Path:
    """COCO (coco.json) with PNG frames under tmp_path/frames, 2-3 fish each."""
    frames = []
    for i in range(n_frames):
        rel = f"frames/cam0/{i:06d}.png"
        write_image(tmp_path / rel, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        masks = [_blob_mask(rng, 48, 64, holes) for _ in range(2 + i % 2)]
        frames.append(_frame(i + 1, rel, masks))
    return write_coco(frames, tmp_path / "coco.json")


def _review(tasks: list[dict[str, Any]], **edits: Any) -> list[dict[str, Any]]:
    """What Label Studio exports after a reviewer accepted every prediction as it is.

    ``edits[task_index] = list of results`` replaces that task's annotation result.
    """
    exported = []
    for t, task in enumerate(copy.deepcopy(tasks)):
        prediction = task["predictions"][0]
        result = edits.get(f"t{t}", prediction["result"])
        annotation = {
            "id": 100 + t,
            "completed_by": 1,
            "result": result,
            "was_cancelled": False,
            "ground_truth": False,
            "created_at": "2026-01-01T10:00:00.000000Z",
            "updated_at": "2026-01-01T10:00:00.000000Z",
        }
        exported.append(
            {"id": t + 1, "data": task["data"], "annotations": [annotation], "predictions": [t]}
        )
    return exported


def _masks(frame: AnnotatedFrame) -> list[np.ndarray]:
    return [inst.mask() for inst in frame.instances]


def _assert_same_masks(got: AnnotatedFrame, expected: AnnotatedFrame) -> None:
    assert len(got.instances) == len(expected.instances)
    for a, b in zip(_masks(got), _masks(expected), strict=True):
        assert np.array_equal(a, b)


def _export_and_review(coco: Path, out: Path, **kwargs: Any) -> list[dict[str, Any]]:
    export = export_to_label_studio(coco, out, **kwargs)
    return _review(json.loads(export.tasks_json.read_text()))


# ----------------------------------------------------------------------------- export


def test_export_writes_tasks_with_brush_predictions(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    coco = _synthetic_coco(tmp_path, rng)
    export = export_to_label_studio(coco, tmp_path / "ls", model_version="sam-v1")
    tasks = json.loads(export.tasks_json.read_text())
    assert export.tasks == 2 and export.regions == 5 and export.local_files
    task = tasks[0]
    assert task["data"]["image"] == "/data/local-files/?d=frames/cam0/000000.png"
    assert (task["data"]["camera_id"], task["data"]["frame_index"]) == ("cam0", 3)
    assert task["data"]["video"] == "cam0.mp4"
    prediction = task["predictions"][0]
    assert prediction["model_version"] == "sam-v1"
    assert prediction["score"] == pytest.approx(0.875)
    region = prediction["result"][0]
    assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == ["fish"]
    assert (region["original_width"], region["original_height"]) == (64, 48)
    frame = read_coco(coco)[0]
    assert region["value"]["rle"] == mask_to_brush_rle(frame.instances[0].mask())
    config = ET.fromstring(export.config_xml.read_text())
    brush = config.find("BrushLabels")
    assert brush is not None and brush.get("name") == region["from_name"]
    assert [label.get("value") for label in brush] == ["fish"]


def test_exported_tasks_validate_against_the_labeling_config(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    interface = pytest.importorskip("label_studio_sdk.label_interface").LabelInterface
    coco = _synthetic_coco(tmp_path, rng)
    for polygons in (False, True):
        export = export_to_label_studio(coco, tmp_path / f"ls{polygons}", polygons=polygons)
        config = interface(export.config_xml.read_text())
        for task in json.loads(export.tasks_json.read_text()):
            assert config.validate_prediction(task["predictions"][0])
    assert "PolygonLabels" in labeling_config(polygons=True)
    assert "PolygonLabels" not in labeling_config()


def test_export_url_prefix_and_image_root(tmp_path: Path, rng: np.random.Generator) -> None:
    coco = _synthetic_coco(tmp_path, rng)
    export = export_to_label_studio(
        coco, tmp_path / "ls", image_root=tmp_path / "frames", url_prefix="http://host:8081/img"
    )
    task = json.loads(export.tasks_json.read_text())[0]
    assert task["data"]["image"] == "http://host:8081/img/cam0/000000.png"
    with pytest.raises(ValueError, match="outside the image root"):
        export_to_label_studio(coco, tmp_path / "ls2", image_root=tmp_path / "elsewhere")
    assert not (tmp_path / "ls2").exists()


def test_export_refuses_missing_images_and_box_only_fish(tmp_path: Path) -> None:
    mask = np.zeros((20, 30), bool)
    mask[2:5, 3:9] = True
    missing = _frame(1, "nope.png", [mask])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        export_to_label_studio([missing], tmp_path / "ls", coco_dir=tmp_path)
    write_image(tmp_path / "a.png", np.zeros((20, 30), np.uint8))
    box_only = AnnotatedFrame(1, "a.png", 30, 20, "cam0", 0, instances=(Instance([1, 1, 5, 5]),))
    with pytest.raises(ValueError, match="has no mask"):
        export_to_label_studio([box_only], tmp_path / "ls", coco_dir=tmp_path)
    assert not (tmp_path / "ls").exists()


# ----------------------------------------------------------------------------- round trips


def test_brush_round_trip_is_exact_on_synthetic_frames(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    coco = _synthetic_coco(tmp_path, rng, n_frames=3)
    exported = _export_and_review(coco, tmp_path / "ls")
    report = import_from_label_studio(
        exported, image_root=tmp_path, out_coco=tmp_path / "reviewed" / "labels.json"
    )
    assert (report.tasks, report.imported, report.instances) == (3, 3, 7)
    assert report.cancelled == report.unreviewed == report.empty == 0
    original = read_coco(coco)
    reviewed = read_coco(tmp_path / "reviewed" / "labels.json")
    for got, expected in zip(reviewed, original, strict=True):
        _assert_same_masks(got, expected)
        assert (got.image_id, got.camera_id, got.frame_index, got.video) == (
            expected.image_id,
            expected.camera_id,
            expected.frame_index,
            expected.video,
        )
        assert got.image_path == "../" + expected.image_path
        assert got.resolve_image(tmp_path / "reviewed").resolve() == (
            expected.resolve_image(tmp_path).resolve()
        )
        assert [i.fish_id for i in got.instances] == [i.fish_id for i in expected.instances]
        assert [i.extra for i in got.instances] == [i.extra for i in expected.instances]
        assert all(i.score is None for i in got.instances)  # human labels now
        assert got.extra["tank"] == "A" and got.extra["ls_task_id"] == expected.image_id


def _aquarium_coco(tmp_path: Path, n_images: int = 3) -> Path:
    """COCO over the real aquarium frames: an ellipse mask inside each VOC box."""
    frames = []
    for i, xml_path in enumerate(sorted((AQUARIUM / "annotations").glob("*.xml"))[:n_images]):
        root = ET.parse(xml_path).getroot()
        image = AQUARIUM / "images" / root.findtext("filename", "")
        height, width = read_image(image).shape[:2]
        masks = []
        for obj in root.iter("object"):
            box = obj.find("bndbox")
            assert box is not None
            x0, y0, x1, y1 = (float(box.findtext(k, "0")) for k in ("xmin", "ymin", "xmax", "ymax"))
            mask = np.zeros((height, width), np.uint8)
            center = (int((x0 + x1) / 2), int((y0 + y1) / 2))
            axes = (max(int((x1 - x0) / 2) - 1, 1), max(int((y1 - y0) / 2) - 1, 1))
            cv2.ellipse(mask, center, axes, 0, 0, 360, 1, -1)
            masks.append(mask.astype(bool))
        frames.append(_frame(i + 1, str(image.resolve()), masks))
    return write_coco(frames, tmp_path / "aquarium.json")


def _suim_coco(tmp_path: Path) -> Path:
    """COCO over the real SUIM photos with fish: one instance per connected component."""
    frames = []
    for i, mask_path in enumerate(sorted((SUIM / "masks").iterdir())):
        semantic = read_image(mask_path, color=False) > 127
        count, labels = cv2.connectedComponents(semantic.astype(np.uint8))
        masks = [labels == k for k in range(1, count) if (labels == k).sum() >= 30]
        images = [p for p in (SUIM / "images").iterdir() if p.stem == mask_path.stem]
        if masks and images:
            frames.append(_frame(i + 1, str(images[0].resolve()), masks, camera="suim"))
    assert frames, "SUIM has fish images"
    return write_coco(frames, tmp_path / "suim.json")


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared real data not found at {SHARED_DATA}")
@pytest.mark.parametrize("dataset", ["aquarium", "suim"])
def test_round_trips_on_real_images(tmp_path: Path, dataset: str) -> None:
    coco = _aquarium_coco(tmp_path) if dataset == "aquarium" else _suim_coco(tmp_path)
    root = (AQUARIUM if dataset == "aquarium" else SUIM).resolve()
    original = read_coco(coco)
    brush = import_from_label_studio(
        _export_and_review(coco, tmp_path / "brush", image_root=root), image_root=root
    )
    polygon = import_from_label_studio(
        _export_and_review(coco, tmp_path / "poly", image_root=root, polygons=True),
        image_root=root,
    )
    ious = []
    for got_brush, got_polygon, expected in zip(
        brush.frames, polygon.frames, original, strict=True
    ):
        _assert_same_masks(got_brush, expected)  # brush: pixel-identical (IoU 1.0)
        assert Path(got_brush.image_path) == Path(expected.image_path)
        assert len(got_polygon.instances) == len(expected.instances)
        for a, b in zip(_masks(got_polygon), _masks(expected), strict=True):
            ious.append(mask_iou(a, b))
    assert min(ious) >= 0.98, f"polygon round trip IoU min {min(ious):.4f}"


def test_polygon_round_trip_on_synthetic_frames(tmp_path: Path, rng: np.random.Generator) -> None:
    coco = _synthetic_coco(tmp_path, rng, n_frames=3, holes=False)
    export = export_to_label_studio(coco, tmp_path / "ls", polygons=True)
    tasks = json.loads(export.tasks_json.read_text())
    region = tasks[0]["predictions"][0]["result"][0]
    assert region["type"] == "polygonlabels" and len(region["value"]["points"]) >= 3
    assert all(0 <= v <= 100 for p in region["value"]["points"] for v in p)
    report = import_from_label_studio(_review(tasks), image_root=tmp_path)
    for got, expected in zip(report.frames, read_coco(coco), strict=True):
        assert len(got.instances) == len(expected.instances)
        for a, b in zip(_masks(got), _masks(expected), strict=True):
            assert mask_iou(a, b) >= 0.98


def test_polygon_export_merges_the_parts_of_one_fish(tmp_path: Path) -> None:
    mask = np.zeros((30, 40), bool)
    mask[3:10, 3:12] = True
    mask[15:25, 20:35] = True  # an occluded fish seen as two parts
    write_image(tmp_path / "a.png", np.zeros((30, 40), np.uint8))
    coco = write_coco([_frame(1, "a.png", [mask])], tmp_path / "c.json")
    export = export_to_label_studio(coco, tmp_path / "ls", polygons=True)
    tasks = json.loads(export.tasks_json.read_text())
    assert len(tasks[0]["predictions"][0]["result"]) == 2
    frame = import_from_label_studio(_review(tasks), image_root=tmp_path).frames[0]
    assert len(frame.instances) == 1 and np.array_equal(frame.instances[0].mask(), mask)


def test_url_prefix_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    coco = _synthetic_coco(tmp_path, rng)
    prefix = "https://files.lab/fish/"
    exported = _export_and_review(coco, tmp_path / "ls", url_prefix=prefix)
    report = import_from_label_studio(exported, image_root=tmp_path, url_prefix=prefix)
    for got, expected in zip(report.frames, read_coco(coco), strict=True):
        assert Path(got.image_path) == tmp_path / expected.image_path
    with pytest.raises(LabelStudioFormatError, match="cannot map image URL"):
        import_from_label_studio(exported, image_root=tmp_path)


# ----------------------------------------------------------------------------- import policy


def _annotation(ident: int, result: list[Any], updated: str, **fields: Any) -> dict[str, Any]:
    return {"id": ident, "result": result, "updated_at": updated, "created_at": updated, **fields}


def test_import_policy(tmp_path: Path, rng: np.random.Generator) -> None:
    coco = _synthetic_coco(tmp_path, rng, n_frames=6)
    tasks = json.loads(export_to_label_studio(coco, tmp_path / "ls").tasks_json.read_text())
    original = read_coco(coco)
    accepted = [t["predictions"][0]["result"] for t in tasks]
    edited_mask = np.zeros((48, 64), bool)
    edited_mask[10:20, 5:30] = True
    edited = copy.deepcopy(accepted[1])
    edited[0]["value"]["rle"] = mask_to_brush_rle(edited_mask)  # reviewer repainted fish 0
    added = copy.deepcopy(accepted[1][0])
    added["id"] = "new-by-reviewer"
    added["value"]["rle"] = mask_to_brush_rle(np.roll(edited_mask, 20, axis=1))
    empty_region = copy.deepcopy(accepted[1][0])
    empty_region["id"] = "erased"
    empty_region["value"]["rle"] = mask_to_brush_rle(np.zeros((48, 64), bool))
    export = [
        # 0: several annotations: the newest non-cancelled one wins
        {
            "id": 1,
            "data": tasks[0]["data"],
            "annotations": [
                _annotation(1, [], "2026-01-01T09:00:00Z"),
                _annotation(2, accepted[0], "2026-01-02T09:00:00.5Z"),
                _annotation(3, [], "2026-01-03T09:00:00Z", was_cancelled=True),
            ],
        },
        # 1: edited + a region added by the reviewer + an erased (empty) one
        {
            "id": 2,
            "data": tasks[1]["data"],
            "annotations": [_annotation(4, [*edited, added, empty_region], "2026-01-01T09:00:00Z")],
        },
        # 2: cancelled (skipped) task
        {
            "id": 3,
            "data": tasks[2]["data"],
            "annotations": [
                _annotation(5, accepted[2], "2026-01-01T09:00:00Z", was_cancelled=True)
            ],
        },
        # 3: reviewed as "no fish": submitted with no regions
        {"id": 4, "data": tasks[3]["data"], "annotations": [_annotation(6, [], "2026-01-01Z")]},
        # 4: nobody annotated it
        {"id": 5, "data": tasks[4]["data"], "annotations": [], "predictions": [5]},
        # 5: legacy export: `completions`, old-style skip; ground truth beats newer
        {
            "id": 6,
            "data": tasks[5]["data"],
            "completions": [
                _annotation(7, accepted[5], "2026-01-01T09:00:00Z", ground_truth=True),
                _annotation(8, [], "2026-01-05T09:00:00Z"),
                _annotation(9, [], "2026-01-06T09:00:00Z", skipped=True),
            ],
        },
    ]
    report = import_from_label_studio(export, image_root=tmp_path)
    assert [f.image_id for f in report.frames] == [1, 2, 4, 6]
    assert (report.tasks, report.imported, report.cancelled, report.unreviewed) == (6, 4, 1, 1)
    assert (report.empty, report.ignored_annotations, report.empty_regions) == (1, 4, 1)
    frames = {f.image_id: f for f in report.frames}
    _assert_same_masks(frames[1], original[0])
    assert frames[1].extra["ls_annotation_id"] == 2
    _assert_same_masks(frames[6], original[5])
    assert frames[6].extra["ls_annotation_id"] == 7
    assert frames[4].instances == () and (frames[4].width, frames[4].height) == (64, 48)
    got = frames[2].instances
    assert len(got) == 4  # 3 predicted (one repainted) + 1 added; the empty one dropped
    assert np.array_equal(got[0].mask(), edited_mask) and got[0].fish_id == 10
    assert np.array_equal(got[1].mask(), original[1].instances[1].mask())
    assert got[3].fish_id is None and np.array_equal(got[3].mask(), np.roll(edited_mask, 20, 1))
    assert "no fish" in report.summary() or "with no fish" in report.summary()


def test_empty_frame_size_comes_from_the_image_when_the_task_lacks_it(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", np.zeros((21, 34, 3), np.uint8))
    data = {"image": "/data/local-files/?d=a.png", "camera_id": "c", "frame_index": 0}
    export = [{"id": 9, "data": data, "annotations": [_annotation(1, [], "2026-01-01Z")]}]
    frame = import_from_label_studio(export, image_root=tmp_path).frames[0]
    assert (frame.image_id, frame.width, frame.height, frame.instances) == (9, 34, 21, ())


# ----------------------------------------------------------------------------- bad exports


def _one_task_export(tmp_path: Path, rng: np.random.Generator) -> list[dict[str, Any]]:
    return _export_and_review(_synthetic_coco(tmp_path, rng, n_frames=1), tmp_path / "ls")


def _region(export: list[dict[str, Any]]) -> dict[str, Any]:
    return export[0]["annotations"][0]["result"][0]


BAD_EXPORTS = [
    ("unknown type", lambda r: r.update(type="rectanglelabels"), "result type 'rectanglelabels'"),
    ("wrong label", lambda r: r["value"].update(brushlabels=["shark"]), r"labels \['shark'\]"),
    ("no width", lambda r: r.pop("original_width"), "no valid original_width"),
    ("rotated", lambda r: r.update(image_rotation=90), "rotated by 90 degrees"),
    ("short rle", lambda r: r["value"].update(rle=r["value"]["rle"][:-12]), "truncated"),
    (
        "rle size",
        lambda r: r["value"].update(rle=mask_to_brush_rle(np.ones((48, 63), bool))),
        r"expected width\*height\*4 = 64\*48\*4",
    ),
    ("no rle", lambda r: r["value"].pop("rle"), "no 'rle'"),
    (
        "bad points",
        lambda r: r.update(
            type="polygonlabels", value={"polygonlabels": ["fish"], "points": [[1, 2]]}
        ),
        ">= 3",
    ),
]


@pytest.mark.parametrize(
    ("name", "corrupt", "message"), BAD_EXPORTS, ids=[b[0] for b in BAD_EXPORTS]
)
def test_bad_regions_give_one_clear_error_and_write_nothing(
    tmp_path: Path, rng: np.random.Generator, name: str, corrupt: Any, message: str
) -> None:
    export = _one_task_export(tmp_path, rng)
    corrupt(_region(export))
    out = tmp_path / "out" / "labels.json"
    with pytest.raises(LabelStudioFormatError, match=message) as err:
        import_from_label_studio(export, image_root=tmp_path, out_coco=out)
    assert "task 1, annotation 100" in str(err.value)
    assert not out.exists()


def test_truncated_export_file_is_refused_and_old_output_kept(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    export = _one_task_export(tmp_path, rng)
    path = tmp_path / "export.json"
    text = json.dumps(export)
    path.write_text(text[: len(text) // 2])
    out = tmp_path / "labels.json"
    out.write_text("previous")
    with pytest.raises(LabelStudioFormatError, match="not valid JSON.*truncated"):
        import_from_label_studio(path, image_root=tmp_path, out_coco=out)
    assert out.read_text() == "previous"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(LabelStudioFormatError, match="a list of tasks"):
        import_from_label_studio(path, image_root=tmp_path)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("/data/local-files/?d=../secret.png", r"contains '\.\.'"),
        ("/data/local-files/?d=frames/../../x.png", r"contains '\.\.'"),
        ("/data/local-files/?d=/etc/passwd", "outside the image root"),
        ("/data/upload/1/abc.png", "cannot map image URL"),
        ("", "non-empty string"),
    ],
)
def test_image_paths_leaving_the_root_are_refused(
    tmp_path: Path, rng: np.random.Generator, image: str, message: str
) -> None:
    export = _one_task_export(tmp_path, rng)
    export[0]["data"]["image"] = image
    with pytest.raises(LabelStudioFormatError, match=message):
        import_from_label_studio(export, image_root=tmp_path)


def test_absolute_path_inside_the_root_is_accepted(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    export = _one_task_export(tmp_path, rng)
    absolute = tmp_path / "frames" / "cam0" / "000000.png"
    export[0]["data"]["image"] = f"/data/local-files/?d={absolute}"
    frame = import_from_label_studio(export, image_root=tmp_path).frames[0]
    assert Path(frame.image_path) == absolute


def test_tasks_without_frame_identity_or_duplicated_are_refused(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    export = _one_task_export(tmp_path, rng)
    twice = [export[0], {**copy.deepcopy(export[0]), "id": 2}]
    with pytest.raises(LabelStudioFormatError, match="tasks 1 and 2 are both image 1"):
        import_from_label_studio(twice, image_root=tmp_path)
    del export[0]["data"]["camera_id"]
    with pytest.raises(LabelStudioFormatError, match="data has no 'camera_id'"):
        import_from_label_studio(export, image_root=tmp_path)
    with pytest.raises(LabelStudioFormatError, match="expected an object with 'data'"):
        import_from_label_studio([{"id": 1}], image_root=tmp_path)


def test_push_refuses_to_reuse_a_project_with_another_config() -> None:
    from aquapose.segmentation.io.labelstudio_server import _check_config

    _check_config(labeling_config(polygons=True), "p", polygons=True)
    _check_config(labeling_config(polygons=True), "p", polygons=False)
    with pytest.raises(ValueError, match='no <PolygonLabels name="polygon">'):
        _check_config(labeling_config(), "p", polygons=True)
    other = '<View><Image name="image" value="$image"/><BrushLabels name="mask" toName="image">'
    with pytest.raises(ValueError, match="project 'p' exists"):
        _check_config(other + '<Label value="coral"/></BrushLabels></View>', "p", polygons=False)


# ----------------------------------------------------------------------------- review queue


def _rect(top: int, left: int, height: int = 6, width: int = 10) -> np.ndarray:
    mask = np.zeros((24, 40), bool)
    mask[top : top + height, left : left + width] = True
    return mask


def _fish(mask: np.ndarray, score: float = 0.99, **extra: Any) -> Instance:
    return Instance(mask_to_box_xyxy(mask), encode_rle(mask), score=score, fish_id=7, extra=extra)


def _queue_coco(tmp_path: Path) -> Path:
    """Six frames, one per kind of doubt, in an order that is not the queue's."""
    write_image(tmp_path / "f.png", np.zeros((24, 40, 3), np.uint8))
    a, b = _rect(2, 2), _rect(12, 20)
    kinds: list[tuple[tuple[Instance, ...], dict[str, Any]]] = [
        ((_fish(a), _fish(b)), {}),  # clean: 0.02
        ((_fish(a, 0.5),), {}),  # low score: 0.5
        ((_fish(a), _fish(b, mask_trusted=False)), {}),  # box-only: 1.01
        ((_fish(a, accepted=False, reject_reason="low_contrast"), _fish(b)), {}),  # 1.01
        (  # as in train.json: two rejected boxes and their reasons: 2.01
            (_fish(a),),
            {
                "rejected_boxes_xyxy": [[0, 0, 4, 4], [5, 5, 9, 9]],
                "rejected_reasons": ["low_contrast", "small_area"],
            },
        ),
        ((_fish(a, 0.9),), {"ignore_regions_xyxy": [[10, 10, 30, 20]]}),  # merged: 2.1
    ]
    frames = [
        AnnotatedFrame(n + 1, "f.png", 40, 24, "cam0", n, "v.mp4", instances, extra)
        for n, (instances, extra) in enumerate(kinds)
    ]
    return write_coco(frames, tmp_path / "labels.json")


def test_uncertain_order_puts_rejected_merged_and_box_only_frames_first(tmp_path: Path) -> None:
    coco = _queue_coco(tmp_path)
    by_file = json.loads(export_to_label_studio(coco, tmp_path / "a").tasks_json.read_text())
    assert [t["data"]["frame_index"] for t in by_file] == [0, 1, 2, 3, 4, 5]  # default: as is
    export = export_to_label_studio(coco, tmp_path / "b", order="uncertain")
    tasks = json.loads(export.tasks_json.read_text())
    assert [t["data"]["frame_index"] for t in tasks] == [5, 4, 2, 3, 1, 0]  # 2, 3: tie, file order
    assert [t["data"]["review_rank"] for t in tasks] == [1, 2, 3, 4, 5, 6]
    assert [t["data"]["uncertainty"] for t in tasks] == pytest.approx(
        [2.1, 2.01, 1.01, 1.01, 0.5, 0.02]
    )
    reasons = [t["data"]["review_reasons"] for t in tasks]
    assert reasons == [
        "merged blob x1",
        "rejected: low_contrast, small_area",
        "box-only fish x1",
        "rejected: low_contrast",
        "low score 0.50",
        "",
    ]
    # the file-ordered export carries the same queue fields
    assert by_file[5]["data"]["review_rank"] == 1 and by_file[0]["data"]["review_rank"] == 6
    with pytest.raises(ValueError, match="order must be one of file, uncertain"):
        export_to_label_studio(coco, tmp_path / "c", order="random")


def test_a_scripted_review_round_trip_gives_the_painted_masks_as_trusted_labels(
    tmp_path: Path,
) -> None:
    coco = _queue_coco(tmp_path)
    tasks = json.loads(export_to_label_studio(coco, tmp_path / "ls").tasks_json.read_text())
    # frame 2: the reviewer corrects the box-only fish's mask and paints a missed fish
    corrected, missed = _rect(12, 21, 7, 9), _rect(18, 2, 4, 8)
    exported = [
        exported_task(t, [corrected, missed] if n == 2 else None, task_id=n + 1)
        for n, t in enumerate(tasks)
    ]
    report = import_from_label_studio(exported, image_root=tmp_path)
    assert (report.imported, report.unreviewed) == (1, 5)
    frame = report.frames[0]
    assert frame.frame_index == 2
    assert len(frame.instances) == 2
    for inst, painted in zip(frame.instances, [corrected, missed], strict=True):
        assert np.array_equal(inst.mask(), painted)
    fixed, new = frame.instances
    assert fixed.fish_id == 7 and new.fish_id is None  # the corrected prediction kept its fish
    assert "mask_trusted" not in fixed.extra and "accepted" not in fixed.extra
    # a reviewed train.json frame no longer points at rejected boxes to avoid
    exported = [exported_task(tasks[4], [_rect(2, 2)], task_id=5)]
    frame = import_from_label_studio(exported, image_root=tmp_path).frames[0]
    assert "rejected_boxes_xyxy" not in frame.extra and "rejected_reasons" not in frame.extra
