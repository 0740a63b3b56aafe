"""Synthetic aquarium: deterministic multi-camera fish clips with exact mask ground truth.

``generate(out_dir, preset="tiny", seed=0)`` writes videos, COCO ground truth per camera
and a manifest; ``CameraRenderer`` renders single frames (with the label map) for tests.
"""

from aquapose.synth.config import PRESETS, SynthConfig, get_preset, resolve_config
from aquapose.synth.fish import FishAppearance, make_population
from aquapose.synth.generate import generate, summarize_events, write_decoded_frames
from aquapose.synth.motion import CameraPlan, PlannedEvent, Tank, Track, plan_camera, plan_events
from aquapose.synth.render import CameraRenderer, FishInView, RenderedFrame, window_rle

__all__ = [
    "PRESETS",
    "CameraPlan",
    "CameraRenderer",
    "FishAppearance",
    "FishInView",
    "PlannedEvent",
    "RenderedFrame",
    "SynthConfig",
    "Tank",
    "Track",
    "generate",
    "get_preset",
    "make_population",
    "plan_camera",
    "plan_events",
    "resolve_config",
    "summarize_events",
    "window_rle",
    "write_decoded_frames",
]
