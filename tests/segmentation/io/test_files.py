import json

import numpy as np
import pytest

from aquapose.segmentation.io import files


def test_atomic_json_and_image_round_trip(tmp_path):
    path = files.atomic_write_json(tmp_path / "a" / "x.json", {"v": np.int64(3), "a": np.arange(2)})
    assert json.loads(path.read_text()) == {"v": 3, "a": [0, 1]}
    image = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    files.write_image(tmp_path / "img.png", image)
    np.testing.assert_array_equal(files.read_image(tmp_path / "img.png"), image)
    assert files.read_image(tmp_path / "img.png", color=False).shape == (5, 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "img.png"]


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("old")
    with pytest.raises(TypeError, match="cannot write object"):
        files.atomic_write_json(path, {"bad": object()})
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found"):
        files.read_image(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        files.read_image(tmp_path / "bad.png")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        files.atomic_write_bytes(tmp_path, b"x")
    (tmp_path / "latin.json").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="UTF-8"):
        files.read_json(tmp_path / "latin.json")
