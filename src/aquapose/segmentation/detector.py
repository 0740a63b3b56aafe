"""Stage 1, detection: MOG2 background subtraction -> one :class:`Detection` per fish blob.

How the known failure modes of real tanks are handled (DESIGN.md):

- **dark fish labelled shadow**: candidate pixels are shadow (127) ∪ foreground (255);
  a blob holding several sizeable foreground-only cores (255) is split by a watershed
  on its distance transform, seeded by those cores (touching fish -> one box each);
  a part too small for a fish (a fin) joins its neighbour, and the split between the
  others stands (``split_by_contrast`` also seeds dark fish labelled shadow all over by
  their contrast: crowds); a light fish touching a dark one is split by the sign of its
  contrast;
- **cast shadows**: in a blob with a foreground core, shadow pixels far from the core
  and fainter than the fish (or darker than the floor under a light fish) are dropped,
  unless a dropped piece reaches far from the fish (a shadow only lines its edge) and
  is sizeable: that is a faint fish touching a darker one, kept as its own detection;
  a blob with no foreground core (a dark fish labelled shadow all over, joined by the
  fainter shadow it casts) keeps the pixels at ``shadow_contrast`` of its strength or
  more, when that strength stands 16 x above the noise and the floor's detail;
  a blob (or part) with no foreground core and a soft edge is a shadow lying apart from
  its fish (blurred by the fish's height over the floor; a fish's edge is sharp): dropped;
- **faint fish lighter than the floor**: MOG2's per-pixel test misses a fish only a few
  grey levels lighter than the floor (its dark eyes pull its mean lower still); pixels
  whose smoothed brightening over the background reaches ``faint_light_level`` (and
  ``faint_light_snr`` x the frame's own spread of it: noise, flicker) are candidates
  too. Shadows only darken, so this adds no cast shadows. Primed, frozen detectors
  only: a warm-up model's background still holds the fish it saw;
- **faint fish darker than the floor** (a grey fish at high noise): pixels whose
  smoothed darkening reaches ``faint_dark_level`` (and the same noise test) are
  candidates, but only ``faint_dark_distance`` away from MOG2's blobs: beside a fish
  it is the fish's cast shadow;
- **smooth fish over a textured floor** (gravel): a fish of about the floor's grey
  differs from it only where it hides a stone, so MOG2 finds it in pieces. Where the
  floor is textured all around and the frame is smooth (local grey std under
  ``texture_loss`` x the floor's, on top of its noise), the fish hides the floor:
  candidates too;
- **stationary fish**: the model is frozen after priming (``learning_rate=0``), and
  :func:`detect_video` primes it with a robust background of frames spread over the
  clip (:func:`~aquapose.segmentation.background.robust_background`), so a fish that
  stops is still foreground. A fish that rests in one spot in more than half of the
  sampled frames is in their median: its *ghost* (a region whose outline, or on
  gravel whose smoothness, is in the background, not in the frame, and which does not
  move between the frame and one 0.2 s later) is recognised in the frames where it has
  gone, and the floor there re-estimated from them (``heal_ghosts``), so it is found
  while it rests and leaves no ghost detection; what healing leaves of a ghost is
  dropped frame by frame (``is_ghost``). Limit: a fish that never leaves its
  spot in the sampled frames cannot be told from the floor;
- **crowds** (100+ fish): nothing limits the number of fish; fish a few pixels apart
  that the closing joins into one blob are split again when the pixels between them are
  floor (``bridge_contrast``). Fish that touch are one blob (the model stage separates
  them);
- **a fish cut in pieces** (on gravel a smooth fish differs from the floor only where
  it hides stones; on a plain floor a fish of nearly its grey shows in patches): a
  piece beyond a larger one's end, with pixels between that are not floor, is joined to
  it (``tail_reach``), and so is a piece anywhere near when the pixels between are
  nearly as unlike the floor (``join_contrast``), or, over stones, smooth where the floor
  is not (``join_texture_loss``); a light fish's faint cast shadow is
  not taken for a fish touching it (``max_shadow_darkening``);
- **small fish on busy floors**: blobs down to ``min_blob_area`` are fish, but those
  under ``small_blob_area`` must stand ``small_blob_contrast`` noise std out of the
  floor, and up to 4 x that area a level falling with their area (compression leaves
  faint specks on gravel; the mean of a larger blob is surer);
- **shadows joining fish** (crowds): a shadow is trimmed off a fish's blob outside the
  hull of its core, one hull per fish when the core falls into patches of one sign
  with floor or shadow between them;
- **warm-up**: an unprimed model learns for ``warmup_frames`` frames and returns no
  detections meanwhile; priming (:meth:`MOG2Detector.prime`) makes every frame usable;
- **slow illumination drift / moving light**: the light change between background
  and frame (global gain + gradient, fitted robustly) is divided out before
  subtraction (a frozen model would otherwise see it as fish);
- **sensor noise and compression**: priming measures the noise and sets MOG2's
  variance from it; morphological open/close and a minimum blob area remove specks
  (a smaller minimum along the frame's border, where a fish entering view is a sliver);
- **moving camera / sudden global change**, measured as such, never as a count of
  blobs (a tank may hold 100+ fish): the camera moved when the frame is shifted
  against the background by more than ``max_camera_shift`` pixels (phase correlation
  of the two, downscaled to ~``shift_size`` px, whose peak response must reach
  ``min_shift_response`` to be trusted); the scene changed when more than
  ``max_foreground_fraction`` of the frame is candidate; priming found no stable
  background when the priming frames differ by more than noise. Then a
  :class:`GlobalChangeWarning` is issued (once per run) and the frame yields no
  detections; :attr:`MOG2Detector.rejected_frames` counts them. A rotation or zoom
  shows as a low response and, on any floor with texture, as a large foreground.

Blob work is done in each blob's bounding window, never on the full frame.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import cache, partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aquapose.segmentation._blobs import (
    FOREGROUND,
    BlobRules,
    Piece,
    absorb_patches,
    join_tails,
    kernel,
    quantile,
    split_bridged,
    split_by_cores,
    split_by_sign,
    trim_shadows,
)
from aquapose.segmentation._frozen_mog2 import FrozenMOG2
from aquapose.segmentation.background import (
    LightField,
    check_frame,
    is_ghost,
    local_variance,
    robust_background,
    texture,
)
from aquapose.segmentation.io.video import open_video, sample_frame_pairs
from aquapose.segmentation.types import Detection

__all__ = [
    "DetectorConfig",
    "GlobalChangeWarning",
    "MOG2Detector",
    "detect_video",
]


_OPEN3 = kernel(3)  # the 3x3 disk
#: a frame's (camera shift (dx, dy, response) or None, texture-loss mask or None)
_FrameTests = tuple[tuple[float, float, float] | None, np.ndarray | None]
_BAND = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))  # a blob's edge band: 2 px out, 2 in
#: each frame sampled to prime the model comes with one this much later (ghost test)
_PARTNER_SECONDS = 0.2
#: full-frame px: the floor's local mean (split seeding) smooths over gravel's stones
_FLOOR_SIGMA = 3.0
#: a small blob's strongest MOG2 pixels at this x the speck level: a fish (``_faint_speck``)
_SURE_CORE = 1.5
#: a blob at least this many x the faint-light level lighter than the floor gets the
#: faint-light halo (``_faint_half``); a fainter one's blur stays under the level a pixel out
_HALO_CONTRAST = 4.0


class GlobalChangeWarning(UserWarning):
    """Most of the frame changed at once (moving camera, lights switched): frame skipped."""


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of :class:`MOG2Detector`. Areas and lengths are in full-frame pixels.

    Attributes:
        history: MOG2 history (frames) used while learning during warm-up.
        var_threshold: MOG2 squared Mahalanobis threshold over the 3 channels, in units
            of the noise variance measured when priming: 144 = a BGR difference 12 noise
            std long (~7 std per channel: ~9 grey levels at the noise of compressed
            video, sigma ~1.3). Lower finds fainter fish but lets faint cast shadows in.
        var_min: MOG2 floor on each pixel's variance (grey levels squared).
        default_noise_sigma: noise std assumed when priming from a single background
            image (nothing to measure it on). With the noise std ``s``, a pixel counts
            when its BGR difference is longer than ``sqrt(var_threshold) * s``.
        max_noise_sigma: a measured noise std above this is not noise (the priming
            frames do not share one background: moving camera): warn, and reject every
            frame until primed again.
        detect_shadows: let MOG2 label darker-but-similar pixels shadow (127); they
            are candidates too, this only provides the foreground-only cores.
        shadow_threshold: MOG2 shadow ratio tau (shadow if ``tau <= pixel/bg < 1``).
        learning_rate: MOG2 learning rate after warm-up/priming. 0 freezes the model
            (stationary fish stay foreground; light changes are divided out instead);
            -1 is OpenCV's automatic rate (a fish that stops disappears in ~2 s).
        warmup_frames: frames fed with OpenCV's automatic learning rate before an
            unprimed detector returns detections.
        prime_repeats: times the background image is fed to a fresh model by
            :meth:`MOG2Detector.prime`.
        median_frames: frames sampled (evenly spread) by :func:`detect_video` to build
            the background; 0 disables priming (warm-up learning instead).
        median_window: frames per background segment in :func:`detect_video`; the model
            is re-primed at each segment (long clips, lighting changes). 0 = the whole
            clip is one segment.
        heal_ghosts: when priming from frames, recognise fish that rest in one spot in
            more than half of them (they are in the median: a *ghost* in the frames where
            they are gone) and re-estimate the floor there from those frames (see
            :mod:`~aquapose.segmentation.background`): a resting fish stays foreground and
            leaves no ghost detection. Also drops, in each frame, a detection whose
            outline is in the background and not in the frame: what healing left of a
            ghost (:func:`~aquapose.segmentation.background.is_ghost`).
        min_ghost_area: smallest ghost (full-frame pixels) healed or dropped; smaller
            regions are left alone (a piece of a fish misjudged as a ghost, written into the
            background, would be a phantom in every frame). 40 heals the part of a
            resting fish kept in the median where it lay longest (a speck detected in
            every frame once it left); 24 heals pieces of swimming fish too.
        ghost_edge_ratio: a region differing from the background is a ghost when the
            background's outline (the change in mean and std of grey level across the
            region's edge) is this many times the frame's.
        correct_light: divide out the light change between the background and each
            frame (global gain and a gradient, fitted robustly): slow illumination drift
            and a moving light are not foreground.
        estimate_noise: when priming from several frames, set MOG2's variance to the
            noise measured in them (sensor noise + compression); ``var_min`` stays the
            lower bound.
        open_kernel: side of the elliptic opening kernel (noise removal); 0 = off.
        close_kernel: side of the elliptic closing kernel (joins fish fragments); 0 = off.
        min_blob_area: blobs (or split parts) smaller than this are noise: about the area
            of the smallest fish (24 px: a fish ~15 px long; on 1600x1200 rigs whose
            smallest fish are ~30 px long, ~80 drops more specks).
        small_blob_area: blobs (or split parts) smaller than this (full-frame pixels)
            must stand out: their |median frame - background| must reach
            ``small_blob_contrast`` noise std; blobs of area ``a`` up to 4 x this, that
            x ``small_blob_area / a``. Small fish on a busy floor: the specks that
            compression leaves on gravel are faint, a small fish is not (sweep, every 2nd
            frame: precision on a flickering gravel tank 0.88 -> 0.95, resting preset
            0.92 -> 0.96; crowd recall -0.01). Over a plain floor their median |frame -
            background| counts (a small pale fish with its shadow in its blob: a pale
            crowd's recall 0.845 -> 0.859). A part whose strongest 2 x ``min_core_area``
            (and ``min_blob_area``) pixels that MOG2 labels (foreground or shadow) reach
            1.5 x ``small_blob_contrast`` noise std is a fish whatever its median or area
            (a small pale fish joined by the faint-light test's halo: crowd recall 0.950
            -> 0.960; a small dark fish labelled shadow, in its faint rim: a crowd of 90
            small fish 0.866 -> 0.909).
        small_blob_contrast: see ``small_blob_area``; 0 = off.
        min_edge_blob_area: the same for a blob touching the frame's border (a fish
            entering or leaving the view shows as a sliver); capped at ``min_blob_area``.
            There a small blob's sure core (see ``small_blob_area``) needs only this many
            pixels. 20 -> 5: sweep recall mean 0.969 -> 0.971 (a crowd of 112 small fish
            0.913 -> 0.933; truncated fish of 5-20 px were ~40 % of its misses),
            precision mean 0.973 -> 0.972 (a one-fish clip 0.901 -> 0.890).
        max_blob_area: blobs larger than this are not fish (dropped).
        box_padding: pixels added on each side of a blob's tight box (clipped to the frame).
        shadow_trim: in a blob with a foreground-only (255) core, shadow-labelled pixels
            farther than this from the core are a cast shadow and dropped; 0 = keep.
        shadow_contrast: ... and pixels of the core's sign with at least this fraction of
            its contrast are the fish (fins, tail) whatever their distance (a shadow is
            fainter than a dark fish, and darker than the floor under a light one). A
            blob without a foreground core (a dark fish labelled shadow all over) keeps
            the pixels at this fraction of its strongest contrast (90th percentile), when
            that is over 16 x the noise and the floor's detail (not over gravel).
        faint_light_level: pixels whose grey level, smoothed over ``faint_light_blur``, is at
            least this many grey levels above the background are candidates too (a pale fish
            barely lighter than the floor; noise averages out in the smoothing); 0 = off.
            Used once primed (a warm-up background still holds the fish it saw).
        faint_light_blur: Gaussian sigma (full-frame pixels) of that smoothing.
        faint_light_snr: ... and at least this many times the frame's own spread of that
            smoothed difference (robust std over the frame: sensor noise, compression and
            flicker left after the light correction), so a noisy or flickering clip does not
            turn its brighter patches into fish; 0 = the fixed level only.
        faint_dark_level: pixels whose smoothed grey level is this many grey levels (and
            the ``faint_light_snr`` test) below the background are candidates too, at least
            ``faint_dark_distance`` full-frame pixels from MOG2's blobs of fish size (a
            fish MOG2 misses at high noise; beside a fish, its cast shadow); 0 = off.
            Sweep, every 2nd frame: a flickering plain tank's recall 0.59 -> 0.96, a noisy
            gravel tank's 0.75 -> 0.89.
        faint_dark_distance: see ``faint_dark_level``; 0 = anywhere.
        texture_loss: a pixel where the floor is textured and the frame's local grey std is
            under this fraction of the floor's (on top of the frame's own noise) is a
            candidate (a smooth fish hiding gravel; MOG2 sees it only where it hides a
            stone); 0 = off. Sweep: a gravel tank's precision 0.83 -> 0.90 (fewer pieces
            per fish). The test runs at half size, where the noise std is half the
            frame's.
        texture_window: side (full-frame pixels) of the box the local std is taken over.
        texture_thin_window: a second, smaller box, its texture loss added to
            ``texture_window``'s: the larger box averages a thin smooth part (a pale fish's
            tail) with the stones beside it, the smaller alone cuts faint fish on noisy
            gravel into pieces; 0 = off. Sweep: a gravel tank's precision 0.85 -> 0.95.
        texture_min_std: the floor counts as textured where its local std is at least
            this many noise std (at half size), and so around (not only along an edge) --
            three quarters of the pixels within a window's width.
        max_shadow_reach: a trimmed-off piece whose farthest pixel from the fish is more
            than this many times its own half-thickness away is not a cast shadow (which
            lines the fish's edge, reach ~2) but a faint fish touching it: it is kept as a
            detection of its own; 0 = drop every trimmed piece.
        min_faint_fraction: ... when it also holds at least this fraction of the fish's
            area (a fish's fainter fins, behind the peduncle, are smaller).
        max_shadow_darkening: ... unless it is a light fish's cast shadow: darker than
            the floor by less than this fraction of the floor's grey (its darkest tenth),
            at most 2.5 x the fish's area, and lining the fish's edge (over 0.2 of the
            shorter one's length). A shadow in diffuse light is faint; a pale fish of
            nearly the floor's grey leaves it beside a small lighter part. A piece of a
            light fish's dark surround darker than this is a dark fish touching it, even
            lying alongside it. 0 = off.
            Sweep (with the plain-floor joins, ``tail_reach``): the demo preset's
            precision on seeds 1, 2, 6 0.86 / 0.895 / 0.915 -> 0.91 / 0.93 / 0.96.
        min_edge_sharpness: a blob (or split part) without a foreground (255) core is a
            cast shadow, not a fish, when the slope of its contrast across its edge (90th
            percentile over a 5 px band, after a 1 px Gaussian) is below this fraction of its
            median contrast per pixel. A step edge blurred by ``s`` px gives about
            ``0.4 / sqrt(1 + s**2)``: a fish's edge ~0.3, a shadow (blurred by the fish's
            height over the floor) ~0.1; 0 = off.
        split_touching: split blobs holding several foreground-only cores (and light +
            dark fish by contrast sign).
        split_by_contrast: also seed the split of a blob by its strongest contrast against
            the floor's local mean (background smoothed over 3 px) when MOG2 gives it fewer
            than two foreground cores (dark fish labelled shadow all over), where that
            contrast stands out from the noise and the floor's own detail (over gravel a
            fish differs from the floor's mean in patches: no seeds there). Sweep, every
            2nd frame: crowd recall 0.931 -> 0.944, random_100 and 101 0.950 ->
            0.960, no precision lost. (Whether parts stay apart is always judged on the
            fish's bodies, not on the faint halo or shadow that joins two fish.)
        bridge_contrast: a blob the closing joined from pieces of fish size is split
            between them when the pixels it added are floor: their median |contrast| below
            this fraction of the faintest piece's (fragments of one faint fish are joined
            by pixels of its own sign, or both signs where it hides gravel); 0 = off. Fish
            lying a few pixels apart (crowds). Sweep: median |contrast|, not |median
            contrast|: resting preset precision 0.90 -> 0.95, crowd recall -0.004.
        tail_reach: pieces of one fish that MOG2 cut apart (over a textured floor, a tail
            beyond a faint peduncle) are joined when the smaller lies beyond the larger's
            end, at most this x its length away, and the pixels between differ from the
            floor (``bridge_contrast``): either way over a floor with detail (at least 1
            noise std), with the pieces' sign over a plain one; 0 = off. Sweep:
            precision median 0.973 -> 0.979 (dev), noisy gravel tank 0.807 -> 0.866,
            resting presets +0.01-0.02; recall -0.001 median.
        join_contrast: ... and pieces lying anywhere within that reach when the pixels
            between differ from the floor by at least this x the fainter piece's median
            |contrast|, itself at least half the other's (a faint fish broken mid-body
            over gravel; two fish a few pixels apart have floor, or only their faint halo
            or shadow, between them); 0 = off. Sweep: precision on noisy gravel tanks
            0.866 -> 0.887, resting:1 0.880 -> 0.893, median +0.002; recall median
            -0.001 (worst -0.003). Over plain floors too (a fish of nearly the floor's
            grey in patches): precision median 0.979 -> 0.990 (dev).
        join_texture_loss: over stones, the pixels between two pieces are not floor
            either where the frame's grain (median 3x3 grey std, its noise taken out) is
            under this x the floor's (a smooth fish hiding the stones), where the floor's
            grain is over 2 noise std and 3 grey levels (a finer floor joined fish far
            apart); 0 = off. Sweep: precision 0.952 -> 0.986, 0.890 -> 0.915, resting:1
            0.906 -> 0.930, mean 0.972 -> 0.973; recall down by at most 0.003 (3 of 92).
        split_core_depth: a blob's foreground-only pixels deeper than this fraction of
            their maximum distance to the edge form its cores (seeds of the split).
        min_core_area: a core is "sizeable" (a seed) with at least this many pixels, and
            a blob is only considered for splitting with twice as many foreground pixels.
        max_neck_ratio: split parts stay apart only where the border between them is
            narrower than this fraction of the thinner part's width (a neck between two
            touching fish); wider borders are one fish with several dark patches.
        min_part_fraction: each split part must hold at least this fraction of the blob
            (a fish's tail fin with its peduncle is a separate "core" behind a narrow
            neck and holds up to ~25 % of the fish: 0.2 split light fish in two). A
            patch of the other sign under this fraction of a fish and ``small_blob_area``,
            inside its hull, is part of it (a stone the fish hides: one-fish gravel
            clips' precision 0.871 -> 0.936, 0.829 -> 0.835).
        slender_part_aspect: ... unless the part is this slender (long / wide, of its
            body: at 0.3 of the blob's strongest contrast) and lies beside the other part,
            not beyond its end (a tail): a small fish beside a larger one, or beside two
            that touch; 0 = off. Sweep: recall on crowds of fish a few pixels apart
            0.911 -> 0.923, 0.968 -> 0.971, 0.957 -> 0.961, 0.932 -> 0.936, 0.933 ->
            0.938 (5 of 80 scenes up by over 0.003, none down by as much), precision
            within 0.005 (2.0 gave the same).
        sign_split_contrast: a blob holding a region brighter than the background by
            this many grey levels and one darker by as much is split between them (a
            light fish touching a dark one).
        max_foreground_fraction: above this candidate fraction the frame is rejected
            (moving camera / global change; 9 fish cover ~1 % of a frame, 120 small
            fish ~4 %).
        max_camera_shift: a frame shifted against the background by more than this many
            full-frame pixels (phase correlation) is rejected: the camera moved; 0 = off.
        min_shift_response: ... when the correlation peak's response (0-1, how much of
            the frame agrees with the shift) is at least this; a lower peak is no
            measurement (a featureless floor).
        shift_size: longer side (px) of the downscaled grey frames that are correlated.
        scale: run MOG2 on the frame resized by this factor (0 < scale <= 1); boxes and
            masks are mapped back to full-frame coordinates.
    """

    history: int = 500
    var_threshold: float = 144.0
    var_min: float = 1.0
    default_noise_sigma: float = 2.0
    max_noise_sigma: float = 6.0
    detect_shadows: bool = True
    shadow_threshold: float = 0.5
    learning_rate: float = 0.0
    warmup_frames: int = 30
    prime_repeats: int = 10
    median_frames: int = 25
    median_window: int = 0
    heal_ghosts: bool = True
    min_ghost_area: int = 40
    ghost_edge_ratio: float = 2.0
    correct_light: bool = True
    estimate_noise: bool = True
    open_kernel: int = 3
    close_kernel: int = 5
    min_blob_area: int = 24
    min_edge_blob_area: int = 5
    small_blob_area: int = 80
    small_blob_contrast: float = 5.0
    max_blob_area: int = 100_000
    box_padding: int = 4
    shadow_trim: int = 3
    shadow_contrast: float = 0.35
    faint_light_level: float = 3.0
    faint_light_blur: float = 1.5
    faint_light_snr: float = 4.0
    faint_dark_level: float = 8.0
    faint_dark_distance: float = 12.0
    texture_loss: float = 0.5
    texture_window: int = 10
    texture_thin_window: int = 6
    texture_min_std: float = 1.5
    max_shadow_reach: float = 3.0
    min_faint_fraction: float = 0.15
    max_shadow_darkening: float = 0.25
    min_edge_sharpness: float = 0.2
    split_touching: bool = True
    split_by_contrast: bool = True
    bridge_contrast: float = 0.3
    tail_reach: float = 0.4
    join_contrast: float = 0.6
    join_texture_loss: float = 0.8
    split_core_depth: float = 0.5
    min_core_area: int = 12
    max_neck_ratio: float = 0.7
    min_part_fraction: float = 0.3
    slender_part_aspect: float = 2.5
    sign_split_contrast: float = 20.0
    max_foreground_fraction: float = 0.3
    max_camera_shift: float = 3.0
    min_shift_response: float = 0.05
    shift_size: int = 256
    scale: float = 1.0

    def __post_init__(self) -> None:
        """Reject out-of-range values with a one-line ``ValueError`` naming the field.

        Longer than 80 lines on purpose: one check per field, in field order: splitting
        would scatter them.
        """

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"DetectorConfig: {message}")

        for name in (
            "history",
            "shift_size",
            "warmup_frames",
            "prime_repeats",
            "median_frames",
            "median_window",
            "texture_window",
            "texture_thin_window",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"DetectorConfig: {name} must be an int, got {value!r}")
        need(self.history >= 1, f"history must be >= 1, got {self.history}")
        need(self.shift_size >= 16, f"shift_size must be >= 16, got {self.shift_size}")
        need(
            self.max_camera_shift >= 0,
            f"max_camera_shift must be >= 0, got {self.max_camera_shift}",
        )
        need(
            0 <= self.min_shift_response <= 1,
            f"min_shift_response must be in [0, 1], got {self.min_shift_response}",
        )
        need(self.var_threshold > 0, f"var_threshold must be > 0, got {self.var_threshold}")
        need(self.var_min > 0, f"var_min must be > 0, got {self.var_min}")
        need(
            self.max_noise_sigma >= self.default_noise_sigma > 0,
            "need max_noise_sigma >= default_noise_sigma > 0, got "
            f"{self.max_noise_sigma} and {self.default_noise_sigma}",
        )
        need(
            self.default_noise_sigma > 0,
            f"default_noise_sigma must be > 0, got {self.default_noise_sigma}",
        )
        need(
            0 < self.shadow_threshold < 1,
            f"shadow_threshold must be in (0, 1), got {self.shadow_threshold}",
        )
        need(
            self.learning_rate == -1 or 0 <= self.learning_rate <= 1,
            f"learning_rate must be in [0, 1] or -1 (automatic), got {self.learning_rate}",
        )
        need(self.warmup_frames >= 0, f"warmup_frames must be >= 0, got {self.warmup_frames}")
        need(self.prime_repeats >= 1, f"prime_repeats must be >= 1, got {self.prime_repeats}")
        need(self.median_frames >= 0, f"median_frames must be >= 0, got {self.median_frames}")
        need(self.median_window >= 0, f"median_window must be >= 0, got {self.median_window}")
        for name in (
            "faint_dark_level",
            "faint_dark_distance",
            "texture_min_std",
            "open_kernel",
            "close_kernel",
            "box_padding",
            "min_core_area",
            "shadow_trim",
            "min_ghost_area",
            "small_blob_area",
            "small_blob_contrast",
            "bridge_contrast",
            "tail_reach",
            "join_contrast",
            "join_texture_loss",
        ):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(self.min_blob_area >= 1, f"min_blob_area must be >= 1, got {self.min_blob_area}")
        need(
            self.min_edge_blob_area >= 1,
            f"min_edge_blob_area must be >= 1, got {self.min_edge_blob_area}",
        )
        need(
            self.faint_light_level >= 0,
            f"faint_light_level must be >= 0, got {self.faint_light_level}",
        )
        need(
            self.faint_light_blur > 0,
            f"faint_light_blur must be > 0, got {self.faint_light_blur}",
        )
        need(
            self.faint_light_snr >= 0,
            f"faint_light_snr must be >= 0, got {self.faint_light_snr}",
        )
        need(
            self.min_edge_sharpness >= 0,
            f"min_edge_sharpness must be >= 0, got {self.min_edge_sharpness}",
        )
        need(
            self.max_shadow_reach >= 0,
            f"max_shadow_reach must be >= 0, got {self.max_shadow_reach}",
        )
        need(
            0 <= self.min_faint_fraction < 1,
            f"min_faint_fraction must be in [0, 1), got {self.min_faint_fraction}",
        )
        need(
            0 <= self.max_shadow_darkening < 1,
            f"max_shadow_darkening must be in [0, 1), got {self.max_shadow_darkening}",
        )
        need(
            self.max_blob_area > self.min_blob_area,
            f"max_blob_area ({self.max_blob_area}) must be > min_blob_area ({self.min_blob_area})",
        )
        need(
            0 < self.split_core_depth < 1,
            f"split_core_depth must be in (0, 1), got {self.split_core_depth}",
        )
        need(
            0 <= self.shadow_contrast <= 1,
            f"shadow_contrast must be in [0, 1], got {self.shadow_contrast}",
        )
        need(
            0 <= self.min_part_fraction < 0.5,
            f"min_part_fraction must be in [0, 0.5), got {self.min_part_fraction}",
        )
        need(
            self.slender_part_aspect == 0 or self.slender_part_aspect >= 1,
            f"slender_part_aspect must be 0 (off) or >= 1, got {self.slender_part_aspect}",
        )
        need(
            self.sign_split_contrast > 0,
            f"sign_split_contrast must be > 0, got {self.sign_split_contrast}",
        )
        need(
            self.ghost_edge_ratio >= 1,
            f"ghost_edge_ratio must be >= 1, got {self.ghost_edge_ratio}",
        )
        need(
            0 <= self.texture_loss < 1,
            f"texture_loss must be in [0, 1), got {self.texture_loss}",
        )
        need(self.texture_window >= 2, f"texture_window must be >= 2, got {self.texture_window}")
        need(
            self.texture_thin_window == 0 or self.texture_thin_window >= 2,
            f"texture_thin_window must be 0 (off) or >= 2, got {self.texture_thin_window}",
        )
        need(self.max_neck_ratio > 0, f"max_neck_ratio must be > 0, got {self.max_neck_ratio}")
        need(
            0 < self.max_foreground_fraction <= 1,
            f"max_foreground_fraction must be in (0, 1], got {self.max_foreground_fraction}",
        )
        need(0 < self.scale <= 1, f"scale must be in (0, 1], got {self.scale}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MOG2Detector:
    """Per-camera fish detector on top of OpenCV's MOG2 background subtractor.

    One instance per camera/video (it holds that camera's background model). Use
    :meth:`prime` with frames of the clip (or let :func:`detect_video` do it), or
    let it learn for ``config.warmup_frames`` frames (no detections meanwhile).
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        if config is not None and not isinstance(config, DetectorConfig):
            raise TypeError(f"config must be a DetectorConfig, got {type(config).__name__}")
        self.config = config or DetectorConfig()
        c = self.config
        s2 = c.scale * c.scale
        self._open = kernel(c.open_kernel * c.scale)
        self._close = kernel(c.close_kernel * c.scale)
        self._max_area = c.max_blob_area * s2
        min_core = max(1.0, c.min_core_area * s2)
        self._rules = BlobRules(
            min_area=max(1.0, c.min_blob_area * s2),
            min_core=min_core,
            min_seed=min_core / 2.0,
            trim=kernel(2 * c.shadow_trim * c.scale + 1) if c.shadow_trim > 0 else None,
            shadow_contrast=c.shadow_contrast,
            split_core_depth=c.split_core_depth,
            max_neck_ratio=c.max_neck_ratio,
            min_part_fraction=c.min_part_fraction,
            sign_split_contrast=c.sign_split_contrast,
            max_shadow_reach=c.max_shadow_reach,
            min_faint_fraction=c.min_faint_fraction,
            max_shadow_darkening=c.max_shadow_darkening,
            bridge_contrast=c.bridge_contrast,
            tail_reach=c.tail_reach,
            join_contrast=c.join_contrast,
            join_texture_loss=c.join_texture_loss,
            slender_part_aspect=c.slender_part_aspect,
        )
        edge_area = max(1.0, min(c.min_edge_blob_area, c.min_blob_area) * s2)
        self._edge_rules = replace(self._rules, min_area=edge_area)
        # 2 sigma of the faint-light smoothing: how far it spreads a fish past its edge.
        self._halo = kernel(2 * c.faint_light_blur * c.scale + 1)  # at half resolution
        # faint_dark_distance at half resolution, as steps of 2 px (iterating a 5x5 disk is
        # ~2x cheaper than one large disk, and as round)
        self._dark_steps = int(round(c.faint_dark_distance * c.scale / 4))
        self._frame_tests: Future[_FrameTests] | None = None
        self.reset()

    # -- state -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the background model and all counters (a new camera or clip)."""
        self._finish_frame_tests()  # they read the caches reset here
        c = self.config
        self._mog = cv2.createBackgroundSubtractorMOG2(
            history=c.history, varThreshold=c.var_threshold, detectShadows=c.detect_shadows
        )
        self._mog.setShadowThreshold(c.shadow_threshold)
        self._mog.setVarMin(c.var_min)
        # MOG2's test without its update loop, once primed with a zero learning rate
        # (checked against ``apply`` on the first frame): see ``_frozen_mog2``.
        self._frozen: FrozenMOG2 | None = None
        self._frozen_checked = False
        self._frames_seen = 0
        self._primed = False
        self._light: LightField | None = None
        self._background: np.ndarray | None = None  # work-scale BGR uint8
        # (the _background it was made from, background_bgr at frame size)
        self._background_full: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        self._background_grey: np.ndarray | None = None
        self._floor_mean_grey: np.ndarray | None = None  # float32, see _floor_mean
        self._background_half: np.ndarray | None = None
        #: per box side (half size): texture_loss^2 x the floor's local grey variance
        #: (-1: untextured), and the textured floor's box (y0, y1, x0, x1)
        self._texture_floor: dict[int, tuple[np.ndarray, tuple[int, int, int, int]]] = {}
        self._background_small: tuple[np.ndarray, np.ndarray] | None = None  # grey, window
        self._last_work: np.ndarray | None = None  # last frame fed, light-corrected
        self._last_grey: np.ndarray | None = None  # its grey levels (computed once, shared)
        self._last_grey_half: np.ndarray | None = None
        #: (dx, dy, response) of the last frame against the background, full-frame pixels.
        self.last_camera_shift: tuple[float, float, float] | None = None
        #: per-channel noise std used for the model (grey levels): measured when primed
        #: from frames, else ``default_noise_sigma``; None before priming/warm-up.
        self.noise_sigma: float | None = None
        self._frame_shape: tuple[int, int] | None = None
        self._warned = False
        self._unstable = 0.0  # measured noise when priming found no stable background
        #: frames skipped by the global-change guard since the last reset, and why (last).
        self.rejected_frames = 0
        self.reject_reason = ""
        #: candidate (shadow ∪ foreground) fraction of the last frame, before morphology.
        self.last_foreground_fraction = 0.0

    @property
    def is_ready(self) -> bool:
        """True once primed or past ``warmup_frames``: detections are returned."""
        return self._primed or self._frames_seen >= self.config.warmup_frames

    @property
    def frames_seen(self) -> int:
        return self._frames_seen

    @property
    def background_bgr(self) -> np.ndarray | None:
        """The background the frames are compared with: uint8 BGR (H, W, 3) at the frame's
        size (the model's floor once primed or warmed up; None before)."""
        if self._background is None or self._frame_shape is None:
            return None
        height, width = self._frame_shape
        if self._background.shape[:2] == (height, width):
            return self._background
        # resized once per background (segment reads it every frame)
        source, full = self._background_full
        if source is not self._background:
            full = cv2.resize(self._background, (width, height), interpolation=cv2.INTER_LINEAR)
            self._background_full = (self._background, full)
        return full

    def _to_work(self, frame: np.ndarray) -> np.ndarray:
        s = self.config.scale
        if s == 1.0:
            return frame
        h, w = frame.shape[:2]
        size = (max(1, round(w * s)), max(1, round(h * s)))
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    def _check_shape(self, frame: np.ndarray) -> None:
        shape = frame.shape[:2]
        if self._frame_shape is None:
            self._frame_shape = (int(shape[0]), int(shape[1]))
        elif shape != self._frame_shape:
            raise ValueError(
                f"frame size changed from {self._frame_shape} to {shape} (H, W); "
                "use one detector per camera, or reset() it"
            )

    def prime(
        self,
        frames: Sequence[np.ndarray] | np.ndarray,
        partners: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Reset the model and seed it with the robust background of ``frames``.

        ``frames`` is a list of (H, W, 3) BGR frames spread over the clip (their noise is
        measured too), or a single background image. ``partners``: optionally, for each
        frame one a few frames away (what moves between the two is a fish, not a ghost
        of one: :func:`~aquapose.segmentation.background.ghost_regions`). Afterwards
        every frame gives detections (no warm-up). Warns (:class:`GlobalChangeWarning`)
        when the frames share no stable background (moving camera); every frame is then
        rejected.
        """
        c = self.config
        if isinstance(frames, np.ndarray) and frames.ndim == 3:
            sample = [check_frame(frames)]
            work, sigma = self._to_work(sample[0]), 0.0
        else:
            sample = [check_frame(f) for f in frames]
            if not sample:
                raise ValueError("prime needs at least one frame, got none")
            work, sigma = robust_background(
                [self._to_work(f) for f in sample],
                c.correct_light,
                min_area=max(1.0, c.min_ghost_area * c.scale**2) if c.heal_ghosts else 0.0,
                ghost_edge_ratio=c.ghost_edge_ratio,
                partners=None if partners is None else [self._to_work(f) for f in partners],
            )
        self.reset()
        self._check_shape(sample[0])
        self._background = work
        if c.correct_light:
            self._light = LightField(work)
        if not (c.estimate_noise and sigma > 0):
            sigma = c.default_noise_sigma
        elif sigma > c.max_noise_sigma:
            warnings.warn(
                f"the priming frames differ from their median by {sigma:.1f} grey levels (std), "
                f"far more than sensor noise: moving camera or changing scene? Using "
                f"{c.max_noise_sigma:g}",
                GlobalChangeWarning,
                stacklevel=2,
            )
            self._unstable = sigma
            sigma = c.max_noise_sigma
        self.noise_sigma = sigma
        variance = max(c.var_min, sigma**2)
        self._mog.setVarMin(variance)
        self._mog.setVarInit(variance)
        for i in range(c.prime_repeats):
            self._mog.apply(work, learningRate=1.0 / (i + 1))
        self._primed = True
        if c.learning_rate == 0 and np.float32(variance) <= self._mog.getVarMax():
            self._frozen = FrozenMOG2(
                work,
                variance,
                self._mog.getVarThreshold(),
                self._mog.getShadowThreshold(),
                self._mog.getDetectShadows(),
                self._mog.getShadowValue(),
            )

    # -- per frame ---------------------------------------------------------------------
    def foreground_mask(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Feed one frame to the model; MOG2's mask at working scale (0/127/255 uint8)."""
        frame = check_frame(frame_bgr)
        self._check_shape(frame)
        work = self._to_work(frame)
        c = self.config
        self._frames_seen += 1
        if not self._primed and self._frames_seen <= c.warmup_frames:
            # Learning phase: OpenCV's automatic rate.
            fg = self._mog.apply(work, learningRate=-1)
            if self._frames_seen == c.warmup_frames:
                self._background = self._mog.getBackgroundImage()
                if c.correct_light:
                    self._light = LightField(self._background)
            return fg
        if self._light is not None:
            work = self._light.correct(work)
        self._finish_frame_tests()
        self._last_work = work
        self._last_grey = None
        self._last_grey_half = None
        if self._frozen is not None:
            self._frame_tests = _worker().submit(self._run_frame_tests)
            return self._frozen_mask(work)
        return self._mog.apply(work, learningRate=c.learning_rate)

    def _run_frame_tests(self) -> _FrameTests:
        """(:meth:`_camera_shift`, :meth:`_texture_loss` or None) of the last frame: they
        need only the frame, so a frozen model runs them on a worker thread beside its MOG2
        test (OpenCV and numpy release the GIL)."""
        c = self.config
        shift = self._camera_shift()
        if c.texture_loss <= 0 or not (self._primed and c.learning_rate == 0):
            return shift, None
        return shift, self._texture_loss(self._frame_grey_half())

    def _finish_frame_tests(self) -> _FrameTests | None:
        """The last frame's :meth:`_run_frame_tests` once done, or None when none started."""
        pending, self._frame_tests = self._frame_tests, None
        return None if pending is None else pending.result()

    def _frozen_mask(self, work: np.ndarray) -> np.ndarray:
        """MOG2's mask of ``work`` from the frozen model's test (5-8x faster than ``apply``);
        on the first frame after priming both are run, and a difference (a model that is
        not what priming should give) falls back to ``apply`` for good."""
        assert self._frozen is not None
        if self._frozen_checked:
            return self._frozen.apply(work)
        fg = self._mog.apply(work, learningRate=self.config.learning_rate)
        if np.array_equal(fg, self._frozen.apply(work)):
            self._frozen_checked = True
        else:
            self._frozen = None
        return fg

    def detect(
        self, frame_bgr: np.ndarray, camera_id: str = "cam0", frame_index: int | None = None
    ) -> list[Detection]:
        """Feed ``frame_bgr`` (H, W, 3 uint8 BGR) to the model and return its fish.

        Returns [] while warming up and for frames rejected by the global-change
        guard. ``frame_index`` defaults to the number of frames fed before this one.
        """
        index = self._frames_seen if frame_index is None else frame_index
        was_ready = self.is_ready
        fg = self.foreground_mask(frame_bgr)
        if not was_ready:
            return []
        return self._detections_from_mask(fg, frame_bgr.shape[:2], camera_id, int(index))

    def detect_batch(
        self, frames: Iterable[np.ndarray], camera_id: str = "cam0", start_index: int | None = None
    ) -> list[list[Detection]]:
        """:meth:`detect` on consecutive frames; frame indices count up from ``start_index``."""
        results = []
        for i, frame in enumerate(frames):
            index = None if start_index is None else start_index + i
            results.append(self.detect(frame, camera_id=camera_id, frame_index=index))
        return results

    # -- blobs -------------------------------------------------------------------------
    def _reject(self, why: str, camera_id: str, frame_index: int) -> list[Detection]:
        self.rejected_frames += 1
        self.reject_reason = why
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{camera_id} frame {frame_index}: {why}: moving camera or sudden global "
                "change; such frames give no detections",
                GlobalChangeWarning,
                stacklevel=4,
            )
        return []

    def _detections_from_mask(
        self, fg: np.ndarray, frame_hw: tuple[int, int], camera_id: str, frame_index: int
    ) -> list[Detection]:
        c = self.config
        moved, smooth = self._finish_frame_tests() or self._run_frame_tests()
        _, candidate = cv2.threshold(fg, 0, 255, cv2.THRESH_BINARY)
        fraction = cv2.countNonZero(candidate) / candidate.size
        self.last_foreground_fraction = fraction
        if self._unstable:
            why = f"the clip has no stable background (noise {self._unstable:.1f} grey levels)"
            return self._reject(why, camera_id, frame_index)
        if moved is not None:
            dx, dy, response = moved
            why = f"the frame is shifted by ({dx:+.1f}, {dy:+.1f}) px (response {response:.2f})"
            return self._reject(why, camera_id, frame_index)
        if fraction > c.max_foreground_fraction:
            why = (
                f"{fraction:.0%} of the frame is foreground (limit {c.max_foreground_fraction:.0%})"
            )
            return self._reject(why, camera_id, frame_index)
        # Needs a clean background: a warm-up model's still holds the fish it saw.
        if fraction == 0.0 and not self._primed:
            return []
        if self._open is not None:
            candidate = cv2.morphologyEx(candidate, cv2.MORPH_OPEN, self._open)
        if self._primed and c.learning_rate == 0:  # a frozen model: the primed background
            self._missed_by_mog2(candidate, smooth)
        opened = candidate
        if self._close is not None:
            candidate = cv2.morphologyEx(candidate, cv2.MORPH_CLOSE, self._close)
        contours, _ = cv2.findContours(candidate, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        detections: list[Detection] = []
        fish: list[Piece] = []
        work_h, work_w = candidate.shape
        noise = self.noise_sigma or c.default_noise_sigma
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            # A fish entering or leaving the view is a sliver along the frame's edge.
            edge = x == 0 or y == 0 or x + w == work_w or y + h == work_h
            rules = self._edge_rules if edge else self._rules
            if w * h < rules.min_area:
                continue
            blob = np.zeros((h, w), np.uint8)
            cv2.drawContours(blob, [contour], 0, 1, thickness=cv2.FILLED, offset=(-x, -y))
            blob &= candidate[y : y + h, x : x + w] > 0  # keep genuine holes out
            area = int(np.count_nonzero(blob))
            if area < rules.min_area or area > self._max_area:
                continue
            fg_window = fg[y : y + h, x : x + w]
            contrast = self._contrast(x, y, w, h)
            parts = [blob]
            if c.split_touching and opened is not candidate:
                window = (opened[y : y + h, x : x + w] > 0).astype(np.uint8)
                parts = split_bridged(blob, window, contrast, rules, noise)
            detail = cache(partial(self._floor_detail, x, y, w, h, blob))  # if asked
            bg_grey = None if contrast is None else self._grey()[y : y + h, x : x + w]
            if rules.trim is not None:
                parts = _each(
                    trim_shadows, parts, fg_window, contrast, rules, noise, detail, bg_grey
                )
            if c.split_touching:
                if contrast is not None:
                    parts = _each(split_by_sign, parts, contrast, fg_window, rules, noise)
                seed = None
                if c.split_by_contrast and contrast is not None:  # once per blob, if asked
                    seed = cache(partial(self._floor_contrast, x, y, w, h, blob))
                parts = _each(split_by_cores, parts, fg_window, rules, contrast, noise, seed)
            if rules.trim is not None and len(parts) > 1:
                # Again, each fish against its own contrast: the blob's mixes a light fish
                # with dark ones, and a dark fish's shadow joined the fish beside it.
                parts = _each(
                    trim_shadows, parts, fg_window, contrast, rules, noise, detail, bg_grey
                )
            kept = np.bitwise_or.reduce(parts) if len(parts) > 1 else None
            for part in parts:
                if self._faint_speck(part, contrast, noise, fg_window, detail, rules):
                    continue  # compression noise on a textured floor, a sliver of shadow
                if self._soft_edged(part, kept, fg_window, x, y):
                    continue  # a cast shadow lying apart from its fish
                inside = part > 0
                if not inside.any():
                    continue
                sign = 0.0 if contrast is None else float(np.sign(quantile(contrast[inside], 0.5)))
                fish.append(Piece(part, x, y, sign))
        if c.tail_reach > 0:
            fish = join_tails(
                fish, self._rules, noise, self._contrast, self._floor_detail, self._grain
            )
        # a fish hiding a stone is of the other sign there: a small patch in its hull
        fish = absorb_patches(fish, self._rules, c.small_blob_area * c.scale**2)
        if self._primed and c.heal_ghosts:  # what healing left of a ghost
            fish = [p for p in fish if not self._ghost(p, candidate, noise)]
        for piece in fish:
            det = self._to_detection(
                piece.mask, piece.x, piece.y, frame_hw, (work_h, work_w), camera_id, frame_index
            )
            if det is not None:
                detections.append(det)
        return detections

    def _ghost(self, piece: Piece, candidate: np.ndarray, noise: float) -> bool:
        """Whether ``piece`` is a ghost the primed background still holds: its outline in
        the background, not in the frame (:func:`~aquapose.segmentation.background.is_ghost`;
        ``candidate``: the frame's foreground, uint8 0/255, work scale)."""
        c = self.config
        (x0, y0, x1, y1), _, region = _padded(piece.mask, piece.x, piece.y, 4, candidate.shape)
        window = (slice(y0, y1), slice(x0, x1))
        free = candidate[window] == 0  # the ring round it: not another fish
        grey_f, grey_b = self._frame_grey()[window], self._grey()[window]
        min_area = c.min_ghost_area * c.scale**2
        return is_ghost(grey_f, grey_b, region, free, noise, min_area, c.ghost_edge_ratio)

    def _faint_speck(
        self,
        part: np.ndarray,
        contrast: np.ndarray | None,
        noise: float,
        fg_window: np.ndarray,
        floor_detail: Callable[[], float],
        rules: BlobRules | None = None,
    ) -> bool:
        """Whether ``part`` is smaller than ``small_blob_area`` and fainter than
        ``small_blob_contrast`` noise std (|median frame - background|, grey levels; the
        median |.| over a plain floor, ``floor_detail()`` under 1 noise std: there a
        light fish's own shadow in its blob, not specks of both signs, pulls the median
        to the floor's), and has no sure core: the strongest 2 x ``min_core_area`` (and
        ``min_blob_area``) of its pixels that MOG2 labels foreground or shadow
        (``fg_window`` > 0), their median |contrast| at ``_SURE_CORE`` x that level
        whatever its area (a small pale fish: the faint-light halo around it dilutes its
        median; a small dark fish labelled shadow: its faint rim). Half as many over a
        plain floor, which has no clusters of bright stones: a thin pale fish in a noisy
        tank stands out of the noise in few pixels. On the frame's border
        (``rules``: the blob's, if not the detector's) the core of a sliver of a fish needs
        only the border's minimum area."""
        c = self.config
        if contrast is None or c.small_blob_contrast <= 0:
            return False
        area = np.count_nonzero(part)
        small = c.small_blob_area * c.scale * c.scale
        if area >= 4 * small:
            return False
        level = c.small_blob_contrast * noise
        values = contrast[part > 0]
        plain = floor_detail() < noise
        if plain:
            values = np.abs(values)
        if abs(quantile(values, 0.5)) >= level * min(1.0, small / area):
            return False
        need = max(2 * c.min_core_area * c.scale**2, self._rules.min_area) / (2 if plain else 1)
        if rules is not None and rules.min_area < self._rules.min_area:  # a border sliver
            need = rules.min_area
        labelled = np.abs(contrast[(part > 0) & (fg_window > 0)])  # MOG2's pixels
        top = math.ceil(need)
        if labelled.size < top:
            return True
        strongest = np.partition(labelled, labelled.size - top)[labelled.size - top :]
        return quantile(strongest, 0.5) < _SURE_CORE * level

    def _soft_edged(
        self,
        part: np.ndarray,
        parts: np.ndarray | None,
        fg_window: np.ndarray,
        x: int,
        y: int,
    ) -> bool:
        """Whether ``part`` (uint8 0/1 window at (x, y)) has no foreground (255) core and an
        edge too soft for a fish: a blurred cast shadow (see ``min_edge_sharpness``). Its
        border with the blob's other parts (``parts``: the union of all of them, or None;
        often a fish's sharp edge) does not count."""
        c = self.config
        if c.min_edge_sharpness <= 0 or self._background is None or self._last_work is None:
            return False
        if np.count_nonzero((fg_window == FOREGROUND) & (part > 0)) >= self._rules.min_core:
            return False
        # 4 px: room for the edge band outside the part
        (x0, y0, x1, y1), inner, mask = _padded(part, x, y, 4, self._last_work.shape[:2])
        contrast = self._contrast(x0, y0, x1 - x0, y1 - y0)
        assert contrast is not None
        smooth = cv2.GaussianBlur(contrast, (0, 0), 1.0)
        # Sobel's 3x3 kernel weighs the difference over 2 px by 4: /8 gives levels per px.
        slope = cv2.magnitude(
            cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3),
            cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3),
        ) / np.float32(8.0)
        band = cv2.dilate(mask, _BAND) > cv2.erode(mask, _BAND)
        if parts is not None:
            rest = np.zeros_like(mask)
            rest[inner] = parts & (1 - part)
            band &= cv2.dilate(rest, _BAND) == 0
            if not band.any():
                return False
        level = max(abs(quantile(contrast[mask > 0], 0.5)), 3.0)
        return quantile(slope[band], 0.9) < c.min_edge_sharpness * level

    def _missed_by_mog2(self, candidate: np.ndarray, smooth: np.ndarray | None) -> None:
        """Add to ``candidate`` (uint8 0/255, work scale, in place) the fish MOG2's per-pixel
        test misses, found at half the working resolution (smooth signals; 4x fewer pixels):
        faint fish (:meth:`_faint_half`) and smooth fish hiding a textured floor
        (``smooth``, :meth:`_texture_loss`'s mask: already found on the worker thread)."""
        found = self._faint_half(candidate)
        if smooth is not None:
            found = smooth if found is None else found | smooth
        if found is not None:
            _or_doubled(candidate, found)

    def _faint_half(self, candidate: np.ndarray) -> np.ndarray | None:
        """uint8 0/255 at half the working size, or None when empty: smoothed (frame -
        background) grey >= the faint-light level (a pale fish), or <= -``faint_dark_level``
        (a faint dark one), away from MOG2's (opened) blobs of fish size: the smoothing
        spreads a fish MOG2 found past its edge, and a fish's cast shadow lies beside it
        (dark pixels count only ``faint_dark_distance`` away). Specks MOG2 finds inside a
        faint fish get no such halo (it would cut the fish to pieces), nor do blobs under
        ``_HALO_CONTRAST`` x the faint-light level (their 90th percentile): a dark fish
        spreads no light, a pale fish MOG2 found in part too little, and the halo would
        cut off the rest of its body. A blob too thin at half size to enclose that area but
        with as many pixels (a small pale fish of a crowd) gets a 1 px one: its own blur
        doubled it, while the full halo would cut a faint pale fish lying beside it."""
        c = self.config
        if c.faint_light_level <= 0 and c.faint_dark_level <= 0:
            return None
        grey = self._frame_grey_half()
        half = (grey.shape[1], grey.shape[0])
        # numpy, not cv2.subtract(dtype=CV_32F) / cv2.compare: those are ~20x slower here.
        sigma = max(0.5, 0.5 * c.faint_light_blur * c.scale)
        smooth = cv2.GaussianBlur(grey.astype(np.float32) - self._grey_half(half), (0, 0), sigma)
        level = c.faint_light_level
        if c.faint_light_snr > 0:
            level = max(level, c.faint_light_snr * _robust_std(smooth))
        lighter = darker = None
        if c.faint_light_level > 0:
            lighter = (smooth >= level).astype(np.uint8) * np.uint8(255)
        if c.faint_dark_level > 0:
            darker = (smooth <= -max(c.faint_dark_level, level)).astype(np.uint8) * np.uint8(255)
        if not ((lighter is not None and lighter.any()) or (darker is not None and darker.any())):
            return None
        # MOG2's blobs at half size too (every other pixel): 4x fewer to trace.
        coarse = np.ascontiguousarray(candidate[: 2 * half[1] : 2, : 2 * half[0] : 2])
        contours, _ = cv2.findContours(coarse, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        smallest = self._rules.min_area / 4.0
        sizeable, thin = [], []
        for cnt in contours:
            area = cv2.contourArea(cnt)
            if area >= smallest:
                sizeable.append(cnt)
            elif area + cv2.arcLength(cnt, True) / 2 + 1 >= smallest:  # its pixels (Pick)
                thin.append(cnt)
        if lighter is not None and thin:  # a thin pale fish: 1 px, not a halo (see above)
            lines = np.zeros((half[1], half[0]), np.uint8)
            cv2.drawContours(lines, thin, -1, 255, thickness=cv2.FILLED)
            lighter &= ~cv2.dilate(lines, _OPEN3)
        if sizeable and lighter is not None and self._halo is not None:
            light = _light_blobs(sizeable, smooth, _HALO_CONTRAST * level)
            lighter &= ~cv2.dilate(light, self._halo)
        if sizeable and darker is not None and self._dark_steps > 0:
            blobs = np.zeros((half[1], half[0]), np.uint8)
            cv2.drawContours(blobs, sizeable, -1, 255, thickness=cv2.FILLED)
            darker &= ~cv2.dilate(blobs, _BAND, iterations=self._dark_steps)
        found = [m for m in (lighter, darker) if m is not None]
        merged = found[0] | found[1] if len(found) == 2 else found[0]
        return merged if merged.any() else None

    def _texture_loss(self, grey: np.ndarray) -> np.ndarray | None:
        """uint8 0/255 at half the working size, or None: pixels of ``grey`` (the frame's
        :meth:`_frame_grey_half`) where the floor is
        textured (local grey std over ``texture_window`` or ``texture_thin_window`` above
        ``texture_min_std`` noise std at half size, all around: not an edge) and the frame
        is smooth (its local variance under ``texture_loss``^2 x the floor's plus the
        noise's): a smooth fish hiding a gravel floor, which differs from the floor only
        where it hides stones. Only on the textured floor's box."""
        c = self.config
        windows = [c.texture_window] + ([c.texture_thin_window] if c.texture_thin_window else [])
        found = None
        for side in sorted({max(3, int(round(window * c.scale / 2)) | 1) for window in windows}):
            mask = self._texture_loss_at(grey, side)
            if mask is not None:
                found = mask if found is None else found | mask
        return found

    def _texture_loss_at(self, grey: np.ndarray, side: int) -> np.ndarray | None:
        """:meth:`_texture_loss` over boxes of ``side`` half-size pixels."""
        c = self.config
        if side not in self._texture_floor:
            floor_var = local_variance(self._grey_half((grey.shape[1], grey.shape[0])), side)
            noise = (self.noise_sigma or c.default_noise_sigma) / 2  # std at half size
            textured = (floor_var >= (c.texture_min_std * noise) ** 2).astype(np.float32)
            # textured all around (gravel), not along a line (an edge, a ghost's outline)
            around = cv2.boxFilter(textured, -1, (2 * side + 1, 2 * side + 1))
            usable = (around >= 0.75) & (textured > 0)
            # -1 where untextured: a variance (>= 0, up to rounding) is never below it
            limit = floor_var * np.float32(c.texture_loss**2) + np.float32(noise**2)
            floor_var = np.where(usable, limit, -1.0)
            rows, cols = np.flatnonzero(usable.any(axis=1)), np.flatnonzero(usable.any(axis=0))
            box, pad = (0, 0, 0, 0), side // 2  # with the windows of its edge pixels
            if rows.size:
                box = (
                    max(0, int(rows[0]) - pad),
                    min(grey.shape[0], int(rows[-1]) + 1 + pad),
                    max(0, int(cols[0]) - pad),
                    min(grey.shape[1], int(cols[-1]) + 1 + pad),
                )
            self._texture_floor[side] = (floor_var.astype(np.float32), box)
        floor_var, (y0, y1, x0, x1) = self._texture_floor[side]
        if y1 <= y0:
            return None
        smooth = local_variance(grey[y0:y1, x0:x1], side) < floor_var[y0:y1, x0:x1]
        if not smooth.any():
            return None
        mask = np.zeros(floor_var.shape, np.uint8)
        mask[y0:y1, x0:x1] = cv2.morphologyEx(smooth.view(np.uint8), cv2.MORPH_OPEN, _OPEN3)
        return mask * np.uint8(255) if mask.any() else None

    def _frame_grey_half(self) -> np.ndarray:
        """:meth:`_frame_grey` at half size (W // 2, H // 2), uint8 (cached per frame)."""
        if self._last_grey_half is None:
            grey = self._frame_grey()
            h, w = grey.shape
            if h >= 2 and w >= 2 and h % 2 == 0 and w % 2 == 0:
                # an exact 2x2 mean: OpenCV's fast path
                self._last_grey_half = cv2.resize(
                    grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA
                )
            else:
                half = (max(1, w // 2), max(1, h // 2))
                self._last_grey_half = cv2.resize(grey, half, interpolation=cv2.INTER_AREA)
        return self._last_grey_half

    def _frame_grey(self) -> np.ndarray:
        """The last frame fed (light-corrected) in grey levels, uint8 (work scale, cached)."""
        if self._last_grey is None:
            assert self._last_work is not None
            self._last_grey = cv2.cvtColor(self._last_work, cv2.COLOR_BGR2GRAY)
        return self._last_grey

    def _camera_shift(self) -> tuple[float, float, float] | None:
        """(dx, dy, response) when the last frame is shifted against the background by
        more than ``max_camera_shift`` full-frame pixels with a trusted peak, else None."""
        c = self.config
        if c.max_camera_shift <= 0 or self._background is None or self._last_work is None:
            return None
        # From the half-size grey frame (shared with the faint-light test) by an integer
        # factor: INTER_AREA's fast path (a fractional one is ~5x slower).
        full = max(self._frame_grey().shape) <= c.shift_size
        grey = self._frame_grey() if full else self._frame_grey_half()
        k = max(1, math.ceil(max(grey.shape) / c.shift_size))
        size = (max(8, grey.shape[1] // k), max(8, grey.shape[0] // k))
        if self._background_small is None:
            base = self._grey() if full else self._grey_half((grey.shape[1], grey.shape[0]))
            crop = base[: size[1] * k, : size[0] * k].astype(np.float32)
            ref = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            window = cv2.createHanningWindow(size, cv2.CV_32F)
            self._background_small = (ref, window)
        ref, window = self._background_small
        cur = cv2.resize(grey[: size[1] * k, : size[0] * k], size, interpolation=cv2.INTER_AREA)
        cur = cur.astype(np.float32)
        # phaseCorrelate windows its inputs in place when no padding is needed: copies.
        (dx, dy), response = cv2.phaseCorrelate(ref.copy(), cur.copy(), window)
        to_frame = (1.0 if full else 2.0) * k / c.scale  # small -> work -> frame pixels
        shift = (float(dx) * to_frame, float(dy) * to_frame, float(response))
        self.last_camera_shift = shift
        if math.hypot(shift[0], shift[1]) <= c.max_camera_shift or response < c.min_shift_response:
            return None
        # A peak from a fish that moved (on a featureless floor) is no camera motion: the
        # background moved by the shift must explain the frame far better than unmoved.
        mx, my = int(math.ceil(abs(dx))) + 1, int(math.ceil(abs(dy))) + 1
        if 4 * mx >= size[0] or 4 * my >= size[1]:
            return None  # too far to check (the correlation wraps round): not measured
        moved = cv2.warpAffine(ref, np.array([[1, 0, dx], [0, 1, dy]], np.float32), size)
        inner = (slice(my, size[1] - my), slice(mx, size[0] - mx))
        still = float(cv2.absdiff(cur[inner], ref[inner]).mean())
        shifted = float(cv2.absdiff(cur[inner], moved[inner]).mean())
        return shift if shifted < 0.5 * still else None

    def _grey_half(self, size: tuple[int, int]) -> np.ndarray:
        """The background's grey levels at ``size`` (W, H), float32 (cached)."""
        if self._background_half is None:
            grey = cv2.resize(self._grey(), size, interpolation=cv2.INTER_AREA)
            self._background_half = grey.astype(np.float32)
        return self._background_half

    def _grey(self) -> np.ndarray:
        """The background in grey levels, uint8 (work scale)."""
        assert self._background is not None
        if self._background_grey is None:
            self._background_grey = cv2.cvtColor(self._background, cv2.COLOR_BGR2GRAY)
        return self._background_grey

    def _floor_contrast(
        self, x: int, y: int, w: int, h: int, blob: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Frame - the floor's local mean, float32 (h, w), in a window; and
        :meth:`_floor_detail` under ``blob`` (uint8 0/1, the window)."""
        frame = self._frame_grey()[y : y + h, x : x + w].astype(np.float32)
        return frame - self._floor_mean(x, y, w, h), self._floor_detail(x, y, w, h, blob)

    def _grain(self, x: int, y: int, w: int, h: int, mask: np.ndarray) -> tuple[float, float]:
        """The median 3x3 grey-level std under ``mask`` (uint8 0/1, the window at (x, y))
        of the frame and of the background."""
        inside = mask > 0
        window = (slice(y, y + h), slice(x, x + w))
        frame, floor = (
            texture(local_variance(image[window], 3), inside, median=True)
            for image in (self._frame_grey(), self._grey())
        )
        return frame, floor

    def _floor_detail(self, x: int, y: int, w: int, h: int, mask: np.ndarray) -> float:
        """The std of the floor's detail (background - its local mean) under ``mask``
        (uint8 0/1, the window at (x, y)): gravel's stones."""
        inside = mask > 0
        detail = self._grey()[y : y + h, x : x + w][inside] - self._floor_mean(x, y, w, h)[inside]
        return float(detail.std())

    def _floor_mean(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """The floor's local mean (background grey levels smoothed over ``_FLOOR_SIGMA``
        px), float32 (h, w), in a window (the whole image cached)."""
        if self._floor_mean_grey is None:
            grey = self._grey().astype(np.float32)
            sigma = _FLOOR_SIGMA * self.config.scale
            self._floor_mean_grey = cv2.GaussianBlur(grey, (0, 0), sigma)
        return self._floor_mean_grey[y : y + h, x : x + w]

    def _contrast(self, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        """Signed grey-level difference (frame - background), float32 (h, w), in a window."""
        if self._background is None or self._last_work is None:
            return None
        frame = self._frame_grey()[y : y + h, x : x + w]
        return frame.astype(np.float32) - self._grey()[y : y + h, x : x + w]

    def _to_detection(
        self,
        part: np.ndarray,
        x: int,
        y: int,
        frame_hw: tuple[int, int],
        work_hw: tuple[int, int],
        camera_id: str,
        frame_index: int,
    ) -> Detection | None:
        ys = np.flatnonzero(part.any(axis=1))
        xs = np.flatnonzero(part.any(axis=0))
        if ys.size == 0:
            return None
        part = part[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
        x0, y0 = x + int(xs[0]), y + int(ys[0])
        frame_h, frame_w = frame_hw
        area_work = float(np.count_nonzero(part))
        # The blob's window in frame pixels [fy0:fy1, fx0:fx1] (never a full-frame array).
        if self.config.scale == 1.0:
            fx0, fy0 = x0, y0
            fx1, fy1 = x0 + part.shape[1], y0 + part.shape[0]
            window = part > 0
        else:
            sx, sy = frame_w / work_hw[1], frame_h / work_hw[0]
            fx0, fy0 = int(math.floor(x0 * sx)), int(math.floor(y0 * sy))
            fx1 = min(frame_w, int(math.ceil((x0 + part.shape[1]) * sx)))
            fy1 = min(frame_h, int(math.ceil((y0 + part.shape[0]) * sy)))
            up = cv2.resize(part * 255, (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_LINEAR)
            window = up >= 128
            if not window.any():
                window = (
                    cv2.resize(part, (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_NEAREST) > 0
                )
        pad = self.config.box_padding
        box = (
            max(0, fx0 - pad),
            max(0, fy0 - pad),
            min(frame_w, fx1 + pad),
            min(frame_h, fy1 + pad),
        )
        area = area_work / (self.config.scale * self.config.scale)
        score = 1.0 - math.exp(-area / (2.0 * self.config.min_blob_area))
        return Detection(
            box_xyxy=np.array(box, dtype=np.float64),
            score=float(min(max(score, 0.0), 1.0)),
            camera_id=camera_id,
            frame_index=frame_index,
            window_mask=window,
            window_xy=(fx0, fy0),
            frame_hw=(frame_h, frame_w),
        )


def _padded(
    mask: np.ndarray, x: int, y: int, pad: int, work_hw: tuple[int, int]
) -> tuple[tuple[int, int, int, int], tuple[slice, slice], np.ndarray]:
    """A mask's window at (x, y) grown by ``pad`` px (clipped to the work frame):
    its box (x0, y0, x1, y1), the mask's slices in it, and the mask placed there."""
    h, w = mask.shape
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(work_hw[1], x + w + pad), min(work_hw[0], y + h + pad)
    inner = (slice(y - y0, y - y0 + h), slice(x - x0, x - x0 + w))
    placed = np.zeros((y1 - y0, x1 - x0), np.uint8)
    placed[inner] = mask
    return (x0, y0, x1, y1), inner, placed


@cache
def _worker() -> ThreadPoolExecutor:
    """The thread that runs a frame's tests beside MOG2's (``_run_frame_tests``)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="aquapose-detector")


if hasattr(os, "register_at_fork"):  # a forked child has no threads: it starts its own
    os.register_at_fork(after_in_child=_worker.cache_clear)


def _each(
    step: Callable[..., list[np.ndarray]], parts: list[np.ndarray], *args: Any
) -> list[np.ndarray]:
    """``step(part, *args)`` on each part, the pieces of all of them in one list."""
    return [piece for part in parts for piece in step(part, *args)]


def _light_blobs(contours: Sequence[np.ndarray], smooth: np.ndarray, level: float) -> np.ndarray:
    """uint8 0/255 mask, the shape of ``smooth`` (float32 frame - background, smoothed), of
    the blobs (``contours`` in its pixels) whose 90th percentile of it reaches ``level``."""
    light = np.zeros(smooth.shape, np.uint8)
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        window = smooth[y : y + h, x : x + w]
        if window.max() < level:  # most blobs: dark fish
            continue
        inside = np.zeros((h, w), np.uint8)
        cv2.drawContours(inside, [contour], 0, 1, cv2.FILLED, offset=(-x, -y))
        if quantile(window[inside > 0], 0.9) >= level:
            cv2.drawContours(light, [contour], 0, 255, cv2.FILLED)
    return light


def _or_doubled(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst |= src`` upscaled 2x (nearest; uint8 0/255), over ``src``'s non-zero bounding
    box only: upscaling a whole frame's mask costs more than the tests that made it."""
    x, y, w, h = cv2.boundingRect(src)
    if w == 0:
        return
    up = cv2.resize(src[y : y + h, x : x + w], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    region = dst[2 * y : 2 * (y + h), 2 * x : 2 * (x + w)]
    region |= up[: region.shape[0], : region.shape[1]]


def _robust_std(image: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of a grid of ~10,000 of the image's pixels:
    the spread of an image of differences that fish cover only a small part of (a fixed
    sample size: well under 1 ms at any frame size)."""
    step = max(1, int(math.sqrt(image.size / 10_000)))
    sample = image[::step, ::step].ravel()
    return 1.4826 * float(np.median(np.abs(sample - np.median(sample))))


def resumable(config: DetectorConfig) -> bool:
    """Whether :func:`detect_video` can start mid-clip with the same results (``start``)."""
    return config.learning_rate == 0 and config.median_frames > 0


def detect_video(
    video_path: str | Path,
    config: DetectorConfig | None = None,
    camera_id: str | None = None,
    every: int = 1,
    detector: MOG2Detector | None = None,
    start: int = 0,
    stop: int | None = None,
    seek: bool = False,
) -> Iterator[tuple[int, np.ndarray, list[Detection]]]:
    """Run a detector over a whole video, yielding ``(frame_index, frame_bgr, detections)``.

    Every ``every``-th frame (index % every == 0) is yielded once the model is ready;
    every frame is fed to the background model (a frozen model, ``learning_rate=0``,
    learns nothing from a frame, so frames that are not kept are then only grabbed).
    With ``config.median_frames > 0`` the model is primed from that many frames spread
    over the clip (or over each ``median_window`` segment), so frame 0 is usable.
    ``detector`` lets the caller read counters (e.g. ``rejected_frames``) afterwards;
    its config wins over ``config``. ``start`` resumes at that frame: the frames before
    it are skipped, which gives the same detections only for a frozen model primed from
    the clip (``learning_rate=0``, ``median_frames > 0``, the defaults). ``stop`` ends
    before that frame (a chunk ``[start, stop)`` of the clip). ``seek`` jumps to ``start``
    (``CAP_PROP_POS_FRAMES``) instead of decoding the frames before it: fast, but not
    frame-accurate on every codec, so the caller must check the frames it gets.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    path = Path(video_path)
    det = detector or MOG2Detector(config)
    cfg = det.config
    if start and not resumable(cfg):
        raise ValueError(
            f"start={start} needs a frozen model primed from the clip (learning_rate=0, "
            f"median_frames > 0), got learning_rate={cfg.learning_rate}, "
            f"median_frames={cfg.median_frames}"
        )
    cam = camera_id or path.stem
    cap, count = open_video(path)
    if start and count <= 0:
        cap.release()
        raise ValueError(f"{path}: frame count unknown, so the clip cannot be primed to resume")
    segment = cfg.median_window if cfg.median_window > 0 else max(count, 1)
    gap = max(1, round(_PARTNER_SECONDS * (cap.get(cv2.CAP_PROP_FPS) or 15.0)))
    frozen = cfg.learning_rate == 0
    try:
        index, primed = (start if seek else 0), -1
        if index:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        while stop is None or index < stop:
            first = index - index % segment  # of this frame's background segment
            primes = first != primed and start < first + segment
            if cfg.median_frames > 0 and count > 0 and primes and index < count:
                end = min(first + segment, count)
                sample, partners = sample_frame_pairs(path, first, end, cfg.median_frames, gap)
                if sample:
                    det.prime(sample, partners)
                primed = first
            keep = index % every == 0 and index >= start
            if index < start or (not keep and frozen and det.is_ready):
                # A frozen model learns nothing from a frame: skip its decode and apply.
                if not cap.grab():
                    break
                index += 1
                continue
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if keep:
                ready = det.is_ready
                detections = det.detect(frame, camera_id=cam, frame_index=index)
                if ready:
                    yield index, frame, detections
            else:
                det.foreground_mask(frame)
            index += 1
    finally:
        cap.release()
