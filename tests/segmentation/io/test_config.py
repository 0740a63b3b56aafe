"""The YAML config layer: every stage's config round-trips; bad keys and values are one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from aquapose.demo import DemoConfig
from aquapose.segmentation.detect import DetectConfig
from aquapose.segmentation.detection_eval import DetectionEvalConfig
from aquapose.segmentation.detector import DetectorConfig
from aquapose.segmentation.evaluation import EvaluateConfig
from aquapose.segmentation.grabcut import ClassicalConfig
from aquapose.segmentation.io.config import (
    config_defaults,
    config_yaml,
    make_config,
    read_config_file,
    write_config,
)
from aquapose.segmentation.io.labelstudio import ExportConfig, ImportConfig
from aquapose.segmentation.labels import FilterConfig
from aquapose.segmentation.pseudolabel import PseudolabelConfig
from aquapose.segmentation.segment import SegmentConfig
from aquapose.synth.config import SynthConfig

#: One non-default value per config class, nested fields included.
CHANGED = [
    DetectConfig(every=7, max_frames=50, detector=DetectorConfig(min_blob_area=33, scale=0.5)),
    PseudolabelConfig(
        backend="sam",
        checkpoint="ckpt/sam.pth",
        mask_choice="area",
        classical=ClassicalConfig(context=0.3),
        filter=FilterConfig(min_area=7),
    ),
    SegmentConfig(every=3, refine_pad=0, detector=DetectorConfig(median_frames=9)),
    EvaluateConfig(score_threshold=0.25),
    DetectionEvalConfig(iou_threshold=0.5, min_coverage=0.6, flags=("touching",)),
    ExportConfig(image_root=Path("/data/frames"), polygons=True),
    ImportConfig(url_prefix="http://127.0.0.1:8000/", alpha_threshold=64),
    SynthConfig(num_fish=11, fish_length_px=(20.0, 40.0), fish_length_median_px=30.0),
    DemoConfig(seed=4, epochs=2),
]


@pytest.mark.parametrize("config", CHANGED, ids=lambda c: type(c).__name__)
def test_every_config_round_trips_through_yaml(config, tmp_path):
    path = write_config(config, tmp_path / "config.yaml")
    assert make_config(type(config), read_config_file(path), source=str(path)) == config
    # --print-config's defaults read back as the defaults.
    defaults = yaml.safe_load(config_yaml(config_defaults(type(config))))
    assert make_config(type(config), defaults) == type(config)()


def test_train_config_round_trips_and_needs_its_inputs(tmp_path):
    from aquapose.segmentation.training import TrainConfig

    config = TrainConfig(Path("t.json"), Path("v.json"), Path("run"), epochs=3, head_settings=None)
    path = write_config(config, tmp_path / "train.yaml")
    assert make_config(TrainConfig, read_config_file(path)) == config
    with pytest.raises(ValueError, match="train_json is required"):
        make_config(TrainConfig, yaml.safe_load(config_yaml(config_defaults(TrainConfig))))


def test_layers_merge_nested_fields_and_later_layers_win():
    config = make_config(
        DetectConfig,
        {"every": 5, "detector": {"min_blob_area": 40, "scale": 0.5}},
        {"detector": {"scale": 0.25}},
    )
    assert config.every == 5 and config.detector.min_blob_area == 40
    assert config.detector.scale == 0.25
    assert config.detector.max_blob_area == DetectorConfig().max_blob_area


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"evry": 5}, r"cfg.yaml: unknown key 'evry' for DetectConfig; valid keys: every, "),
        ({"detector": {"scale_": 1}}, r"unknown key 'detector.scale_' for DetectorConfig"),
        ({"every": "ten"}, r"every must be an integer, got 'ten'"),
        ({"overlay": "yes"}, r"overlay must be true or false"),
        ({"detector": 3}, r"detector must be a mapping of DetectorConfig fields"),
        ({"every": 0}, r"cfg.yaml: every must be >= 1"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(data, message):
    with pytest.raises(ValueError, match=message) as info:
        make_config(DetectConfig, data, source="cfg.yaml")
    assert "\n" not in str(info.value)


def test_config_files_read_yaml_and_refuse_what_is_not_a_mapping(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_config_file(empty) == {}
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml: expected a mapping"):
        read_config_file(listed)
    broken = tmp_path / "broken.yaml"
    broken.write_text("every: [1,\n")
    with pytest.raises(ValueError, match=r"broken.yaml: not valid YAML \(line"):
        read_config_file(broken)
    with pytest.raises(FileNotFoundError, match="missing.yaml: config file not found"):
        read_config_file(tmp_path / "missing.yaml")


def test_literal_and_tuple_fields_are_checked():
    with pytest.raises(ValueError, match="mask_choice must be one of 'score', 'area'"):
        make_config(PseudolabelConfig, {"mask_choice": "biggest"})
    with pytest.raises(ValueError, match=r"fish_length_px must be a list of 2 values"):
        make_config(SynthConfig, {"fish_length_px": [10.0]})
    assert dataclasses.asdict(make_config(SynthConfig, {"fish_length_px": [20, 40]}))[
        "fish_length_px"
    ] == (20.0, 40.0)
