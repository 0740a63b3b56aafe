"""The synthetic aquarium: exact ground truth, determinism, files, events (on ``tiny``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from aquapose.segmentation.io.coco import read_coco
from aquapose.segmentation.io.files import read_json
from aquapose.segmentation.masks import decode_rle, encode_rle, rle_to_box_xyxy
from aquapose.synth import (
    CameraRenderer,
    generate,
    make_population,
    plan_camera,
    plan_events,
    resolve_config,
    window_rle,
)
from aquapose.synth.motion import event_realised

SEED = 0


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    generate(out, preset="tiny", seed=SEED)
    return out


@pytest.fixture(scope="module")
def tiny_gt(tiny_dir) -> dict:
    manifest = read_json(tiny_dir / "manifest.json")
    return {c["camera_id"]: read_coco(tiny_dir / c["ground_truth"]) for c in manifest["cameras"]}


@pytest.fixture(scope="module")
def renderers() -> list[CameraRenderer]:
    config = resolve_config("tiny")
    population = make_population(config, SEED)
    return [CameraRenderer(config, SEED, i, population) for i in range(config.num_cameras)]


def test_window_rle_matches_full_frame_encoding(rng):
    h, w = 13, 11
    for _ in range(40):
        full = np.zeros((h, w), bool)
        y0, x0 = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
        y1, x1 = int(rng.integers(y0 + 1, h + 1)), int(rng.integers(x0 + 1, w + 1))
        full[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.5
        assert window_rle(full[y0:y1, x0:x1], x0, y0, h, w) == encode_rle(full)
    column = np.ones((h, 3), bool)  # runs that continue across columns
    assert window_rle(column, 4, 0, h, w) == encode_rle(np.pad(column, ((0, 0), (4, 4))))
    with pytest.raises(ValueError, match="does not fit"):
        window_rle(column, 9, 0, h, w)


def test_gt_masks_are_exactly_the_visible_pixels(tiny_gt, renderers):
    checked_fish = 0
    for renderer in renderers:
        frames = tiny_gt[renderer.camera_id]
        for frame in frames:
            rendered = renderer.render(frame.frame_index, debug=True)
            ids = sorted(int(v) - 1 for v in np.unique(rendered.labels) if v)
            assert [i.fish_id for i in frame.instances] == ids
            union = np.zeros(rendered.labels.shape, bool)
            for inst in frame.instances:
                mask = decode_rle(inst.rle)
                assert np.array_equal(mask, rendered.labels == inst.fish_id + 1)
                assert not (union & mask).any(), "visible masks must not overlap"
                union |= mask
                checked_fish += 1
            # Independent of the label map: the pixels the fish changed in the picture.
            changed = np.abs(rendered.clean - rendered.background).max(axis=2) > 0
            assert np.array_equal(changed, union)
    assert checked_fish > 100


def test_occlusion_order_from_isolated_renders(tiny_gt, renderers):
    """GT of fish k = pixels fish k draws alone, minus those of fish drawn in front of it."""
    checked = 0
    for renderer in renderers:
        for frame in tiny_gt[renderer.camera_id]:
            if not any(i.extra["occluded_fraction"] > 0 for i in frame.instances):
                continue
            t = frame.frame_index / renderer.config.fps
            alone, depth = {}, {}
            for track in renderer.plan.tracks:
                fid = track.fish.fish_id
                r = renderer.render(frame.frame_index, debug=True, only_fish={fid})
                alone[fid] = np.abs(r.clean - r.background).max(axis=2) > 0
                depth[fid] = (track.depth(float(track.head_s(t))), fid)
            for inst in frame.instances:
                k = inst.fish_id
                expected = alone[k].copy()
                for j in alone:
                    if depth[j] > depth[k]:
                        expected &= ~alone[j]
                assert np.array_equal(decode_rle(inst.rle), expected)
                checked += inst.extra["occluded_fraction"] > 0
    assert checked >= 3, "tiny should hold fish hidden in part by others"


def test_boxes_match_masks(tiny_gt):
    for frames in tiny_gt.values():
        for frame in frames:
            for inst in frame.instances:
                np.testing.assert_allclose(inst.box_xyxy, rle_to_box_xyxy(inst.rle))


def test_shadows_are_never_fish(tiny_gt, renderers):
    shadow_only = 0
    for renderer in renderers:
        for frame in tiny_gt[renderer.camera_id][::3]:
            rendered = renderer.render(frame.frame_index, debug=True)
            union = np.zeros(rendered.labels.shape, bool)
            for inst in frame.instances:
                union |= decode_rle(inst.rle)
            shadow = rendered.shadow > 0.02
            fish_drawn = np.abs(rendered.clean - rendered.background).max(axis=2) > 0
            bare_shadow = shadow & ~fish_drawn
            assert not (bare_shadow & union).any()
            shadow_only += int(bare_shadow.sum())
    assert shadow_only > 500, "tiny should cast visible shadows"


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tiny_dir):
    again = tmp_path / "again"
    generate(again, preset="tiny", seed=SEED)
    for name in ("cam0_gt.json", "cam1_gt.json", "manifest.json"):
        assert (again / name).read_bytes() == (tiny_dir / name).read_bytes(), name
    other = tmp_path / "other"
    generate(other, preset="tiny", seed=SEED + 1, frames=10)
    short = tmp_path / "short"
    generate(short, preset="tiny", seed=SEED, frames=10)
    assert (other / "cam0_gt.json").read_bytes() != (short / "cam0_gt.json").read_bytes()


def test_videos_readable_with_all_frames(tiny_dir):
    manifest = read_json(tiny_dir / "manifest.json")
    assert manifest["frame_width"] == 192 and manifest["fps"] == 10.0
    for cam in manifest["cameras"]:
        capture = cv2.VideoCapture(str(tiny_dir / cam["video"]))
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            assert frame.shape == (144, 192, 3)
            count += 1
        capture.release()
        assert count == cam["num_frames"] == 60


def test_write_frames_are_the_decoded_video(tmp_path):
    manifest = generate(tmp_path, preset="tiny", seed=SEED, frames=6, write_frames=True)
    frames = read_coco(tmp_path / "cam1_gt.json")
    capture = cv2.VideoCapture(str(tmp_path / "cam1.mp4"))
    for frame in frames:
        ok, decoded = capture.read()
        assert ok
        png = cv2.imread(str(manifest.parent / frame.image_path))
        assert png is not None and np.array_equal(png, decoded)
        assert frame.video == "cam1.mp4" and frame.camera_id == "cam1"
    capture.release()


def test_flags_present_and_each_occurs(tiny_gt):
    seen = {"stationary": False, "low_contrast": False, "touching": False}
    for frames in tiny_gt.values():
        for frame in frames:
            for inst in frame.instances:
                for flag in seen:
                    assert isinstance(inst.extra[flag], bool)
                    seen[flag] |= inst.extra[flag]
    assert all(seen.values()), seen


def test_stationary_fish_keep_their_mask(tiny_gt):
    """An unoccluded fish flagged stationary has the same mask as in the previous frame."""
    compared = 0
    for frames in tiny_gt.values():
        previous = {}
        for frame in frames:
            current = {i.fish_id: i for i in frame.instances}
            for fid, inst in current.items():
                before = previous.get(fid)
                clear = not inst.extra["touching"] and inst.extra["occluded_fraction"] == 0
                if not (inst.extra["stationary"] and clear and before is not None):
                    continue
                if not before.extra["touching"] and before.extra["occluded_fraction"] == 0:
                    assert inst.rle == before.rle
                    compared += 1
            previous = current
    assert compared > 5


def test_demo_schedule_has_every_difficulty():
    config = resolve_config("demo")
    events = plan_events(config, SEED)
    kinds = {e.kind for e in events}
    assert {"long_rest", "cross", "pair_rest", "empty"} <= kinds
    for index in range(config.num_cameras):
        cam = f"cam{index}"
        rests = [e for e in events if e.camera_id == cam and e.kind == "long_rest"]
        assert rests and all(e.t_end - e.t_start >= 10.0 for e in rests)
        plan = plan_camera(config, SEED, index)
        assert all(event_realised(plan, e) for e in plan.events)
    population = make_population(config, SEED)
    assert min(f.contrast for f in population) <= 12.0
    lengths = [f.length_px for f in population]
    assert 30.0 <= min(lengths) < 40.0 and 100.0 < max(lengths) <= 120.0


def test_bad_settings_are_refused():
    with pytest.raises(
        ValueError,
        match="unknown preset 'huge'; valid presets: tiny, demo, rig, crowd, resting, random",
    ):
        resolve_config("huge")
    with pytest.raises(ValueError, match="unknown synth setting 'colour'"):
        resolve_config("tiny", colour=3)
    with pytest.raises(ValueError, match="must be even"):
        resolve_config("tiny", width=191)
    with pytest.raises(ValueError, match="too long"):
        resolve_config("tiny", fish_length_px=(20, 140))
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        generate("unused", preset="tiny", seed=-1)
    with pytest.raises(ValueError, match="frame_index must be in"):
        CameraRenderer(resolve_config("tiny"), 0, 0).render(60)
    with pytest.raises(ValueError, match="floor must be one of plain, sand, gravel"):
        resolve_config("tiny", floor="mud")
    with pytest.raises(ValueError, match="light must be one of even, vignette"):
        resolve_config("tiny", light="strobe")


def test_random_preset_draws_every_kind_of_tank_from_the_seed():
    configs = [resolve_config("random", seed=s) for s in range(60)]
    assert resolve_config("random", seed=7) == configs[7]  # same seed, same tank
    assert len(set(configs)) == 60
    fish = [c.num_fish for c in configs]
    assert min(fish) >= 1 and max(fish) <= 120 and min(fish) < 5 and max(fish) > 60
    assert all(15.0 <= c.fish_length_px[0] <= c.fish_length_px[1] <= 150.0 for c in configs)
    assert max(c.fish_length_px[1] for c in configs) > 120.0
    assert {c.floor for c in configs} == {"plain", "sand", "gravel"}
    assert {c.light for c in configs} == {"even", "vignette", "gradient", "flicker"}
    assert {c.compression for c in configs} == {True, False}
    assert all((c.width, c.height, c.num_cameras) == (640, 480, 1) for c in configs)
    assert min(c.contrast_range[0] for c in configs) < 12.0
    rest = [c.long_rest_seconds[1] / c.duration_s for c in configs]
    assert min(rest) < 0.2 and max(rest) > 0.7


@pytest.mark.parametrize(
    ("floor", "light"), [("plain", "even"), ("gravel", "gradient"), ("sand", "flicker")]
)
def test_floors_and_lights_render_with_exact_ground_truth(floor, light):
    config = resolve_config("tiny", floor=floor, light=light, noise_sigma=0.0)
    renderer = CameraRenderer(config, SEED, 1)
    grain = cv2.Laplacian(renderer.scene.floor.mean(axis=2), cv2.CV_32F).std()
    assert (grain < 0.5) if floor == "plain" else (grain > 2.0)
    if floor == "gravel":
        sand = CameraRenderer(resolve_config("tiny", light=light), SEED, 1).scene.floor
        assert grain > 1.5 * cv2.Laplacian(sand.mean(axis=2), cv2.CV_32F).std()
    frame = renderer.render(10)
    for fish in frame.fish:
        assert np.array_equal(decode_rle(fish.rle), frame.labels == fish.fish_id + 1)
    if light == "flicker":
        gains = [renderer.scene.light(t)[0] for t in np.linspace(0, 10, 101)]
        assert max(gains) - min(gains) > 0.05  # slow, strong flicker


def test_crowd_and_resting_presets():
    crowd = resolve_config("crowd")
    assert crowd.num_fish >= 100 and crowd.fish_length_px[1] <= 40
    resting = resolve_config("resting")
    events = plan_events(resting, SEED)
    rests = [e for e in events if e.kind == "long_rest"]
    assert len(rests) >= 2
    assert all(0.4 <= (e.t_end - e.t_start) / resting.duration_s <= 0.8 for e in rests)
    plan = plan_camera(resting, SEED, 0)
    assert all(event_realised(plan, e) for e in rests)


def test_layout_follows_the_contract(tiny_dir):
    from pycocotools.coco import COCO

    manifest = read_json(tiny_dir / "manifest.json")
    for key in ("preset", "seed", "fps", "frame_width", "frame_height", "cameras", "events"):
        assert key in manifest
    assert manifest["events"]["frames"] == 120
    for index, cam in enumerate(manifest["cameras"]):
        assert cam["camera_id"] == f"cam{index}"
        assert cam["video"] == f"cam{index}.mp4" and cam["ground_truth"] == f"cam{index}_gt.json"
        data = read_json(tiny_dir / cam["ground_truth"])
        assert data["info"]["date_created"] is None
        image = data["images"][7]
        assert image["file_name"] == f"frames/cam{index}/000007.png"
        assert (image["camera_id"], image["frame_index"], image["video"]) == (
            f"cam{index}",
            7,
            f"cam{index}.mp4",
        )
        coco = COCO(str(tiny_dir / cam["ground_truth"]))
        assert len(coco.getImgIds()) == cam["num_frames"]
        assert all(isinstance(a["fish_id"], int) for a in data["annotations"])
