import copy
import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from aquapose.segmentation.io.coco import CocoFormatError, read_coco, write_coco
from aquapose.segmentation.masks import encode_rle
from aquapose.segmentation.types import AnnotatedFrame, Instance


def _frames():
    mask = np.zeros((6, 8), bool)
    mask[1:4, 2:6] = True
    fish = Instance([2, 1, 6, 4], rle=encode_rle(mask), fish_id=3, extra={"stationary": True})
    pred = Instance([2, 1, 6, 4], rle=encode_rle(mask), score=0.75)
    return [
        AnnotatedFrame(1, "frames/cam0/000000.png", 8, 6, "cam0", 0, "cam0.mp4", [fish]),
        AnnotatedFrame(2, "frames/cam1/000005.png", 8, 6, "cam1", 5, "cam1.mp4", [pred]),
        AnnotatedFrame(3, "frames/cam1/000006.png", 8, 6, "cam1", 6, "cam1.mp4", []),
    ]


def test_round_trip_and_pycocotools_loads(tmp_path):
    path = write_coco(_frames(), tmp_path / "out" / "gt.json")
    frames = read_coco(path)
    assert [f.image_id for f in frames] == [1, 2, 3]
    first, second, empty = frames
    assert (first.camera_id, first.frame_index, first.video) == ("cam0", 0, "cam0.mp4")
    assert first.instances[0].fish_id == 3 and first.instances[0].extra == {"stationary": True}
    np.testing.assert_array_equal(first.instances[0].box_xyxy, [2, 1, 6, 4])
    np.testing.assert_array_equal(first.instances[0].mask(), _frames()[0].instances[0].mask())
    assert second.instances[0].score == 0.75 and empty.instances == ()
    coco = COCO(str(path))
    assert len(coco.getAnnIds()) == 2
    assert coco.loadAnns(1)[0]["area"] == 12
    np.testing.assert_array_equal(
        coco.annToMask(coco.loadAnns(1)[0]), _frames()[0].instances[0].mask()
    )
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temp files left


def test_polygons_are_read_as_rle(tmp_path):
    data = json.loads(json.dumps(_base_dict()))
    data["annotations"][0]["segmentation"] = [[2, 1, 6, 1, 6, 4, 2, 4]]
    path = tmp_path / "poly.json"
    path.write_text(json.dumps(data))
    inst = read_coco(path)[0].instances[0]
    assert inst.mask().sum() > 0 and inst.rle is not None and isinstance(inst.rle["counts"], str)


def _base_dict():
    from aquapose.segmentation.io.coco import frames_to_coco

    return frames_to_coco(_frames())


def _mutate(fn):
    data = copy.deepcopy(_base_dict())
    fn(data)
    return data


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda d: d.pop("images"), "top level: missing key 'images'"),
        (lambda d: d["images"][0].pop("camera_id"), "image id=1: missing field 'camera_id'"),
        (lambda d: d["images"][1].update(id=1), "image id=1: duplicate image id"),
        (lambda d: d["images"][0].update(width=0), "image id=1: field 'width'"),
        (lambda d: d["annotations"][1].update(id=1), "annotation id=1: duplicate annotation id"),
        (lambda d: d["annotations"][0].pop("bbox"), "annotation id=1: missing field 'bbox'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 1, 0, 2]), "zero or negative area"),
        (lambda d: d["annotations"][0].update(bbox=[5, 1, 6, 2]), "outside the 8x6 image"),
        (lambda d: d["annotations"][0].update(image_id=99), "unknown image 99"),
        (lambda d: d["annotations"][0].update(category_id=7), "unknown category 7"),
        (
            lambda d: d["annotations"][0]["segmentation"].update(counts="0"),
            "annotation id=1: field 'segmentation' is not a valid RLE",
        ),
        (
            lambda d: d["annotations"][0]["segmentation"].update(size=[5, 8]),
            "does not match the image's",
        ),
        (lambda d: d["annotations"][1].update(score=2.0), "annotation id=2: field 'score'"),
    ],
)
def test_bad_files_name_file_id_and_field(tmp_path, mutation, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_mutate(mutation)))
    with pytest.raises(CocoFormatError, match=message) as info:
        read_coco(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_not_json_and_missing_file(tmp_path):
    path = tmp_path / "trunc.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match="not valid JSON"):
        read_coco(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_coco(tmp_path / "missing.json")


def test_write_refuses_duplicate_image_ids(tmp_path):
    frames = _frames()
    with pytest.raises(ValueError, match="duplicate image_id 1"):
        write_coco([frames[0], frames[0]], tmp_path / "dup.json")
    assert not (tmp_path / "dup.json").exists()


def test_streaming_writer_matches_frames_to_coco_and_writes_nothing_on_error(tmp_path):
    import json

    import numpy as np
    import pytest

    from aquapose.segmentation.io.coco import CocoWriter, frames_to_coco, write_coco
    from aquapose.segmentation.masks import encode_rle
    from aquapose.segmentation.types import AnnotatedFrame, Instance

    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    frames = [
        AnnotatedFrame(
            i + 1,
            f"f{i}.png",
            8,
            6,
            "cam",
            i,
            "v.mp4",
            tuple(Instance([2, 1, 5, 3], encode_rle(mask), score=0.5) for _ in range(i)),
            extra={"k": np.int64(i)},
        )
        for i in range(3)
    ]
    path = write_coco(frames, tmp_path / "out.json")
    written, expected = json.loads(path.read_text()), frames_to_coco(frames)
    for key in ("images", "annotations", "categories", "licenses"):
        assert written[key] == json.loads(json.dumps(expected[key], default=int))
    assert [a["id"] for a in written["annotations"]] == [1, 2, 3]
    with pytest.raises(RuntimeError), CocoWriter(tmp_path / "half.json") as writer:
        writer.add(frames[0])
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == [path]  # no half-written file, no temp files
    with (
        pytest.raises(ValueError, match="duplicate image_id 1"),
        CocoWriter(tmp_path / "d.json") as w,
    ):
        w.add(frames[0])
        w.add(frames[0])


def test_video_frame_names_round_trip():
    from aquapose.segmentation.io.coco import parse_video_frame_name, video_frame_name

    name = video_frame_name("../rig/cam#1.mp4", 12)
    assert name == "../rig/cam#1.mp4#frame=12"
    assert parse_video_frame_name(name) == ("../rig/cam#1.mp4", 12)
    assert parse_video_frame_name("frames/cam0/000012.png") is None
