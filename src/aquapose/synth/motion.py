"""Where each fish is, in each camera, at every moment: tracks and the event schedule.

Each camera sees its own part of the tank (a disc; some cameras see its wall).
A fish's track is a dense path its head swims along (smooth Hermite curves
between waypoints) and a time -> arc-length schedule (still while resting).
Events are planned first, per camera, so the ground truth is guaranteed to
hold them: long still episodes, encounters (two fish crossing over each other
or resting side by side), and stretches when every fish is out of view.
Between events the fish wander: swim to waypoints, rest briefly, leave the
view and come back.

Planning is cheap (no pixels): :func:`plan_events` gives the schedule of a
whole preset without rendering it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from aquapose.synth.config import SynthConfig
from aquapose.synth.fish import FishAppearance, make_population

#: Kinds of planned events.
EVENT_KINDS = ("long_rest", "cross", "pair_rest", "empty")


@dataclass(frozen=True)
class Tank:
    """The tank floor as a disc in one camera's frame pixels; ``None`` radius = no wall seen."""

    center_xy: tuple[float, float]
    radius: float | None

    def inside(self, xy: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Bool per point: inside the tank by at least ``margin`` pixels."""
        if self.radius is None:
            return np.ones(np.asarray(xy).shape[:-1], dtype=bool)
        d = np.linalg.norm(np.asarray(xy, dtype=np.float64) - np.asarray(self.center_xy), axis=-1)
        return d <= self.radius - margin


@dataclass(frozen=True)
class PlannedEvent:
    """One scheduled difficulty in a camera: ``kind`` in EVENT_KINDS, times in seconds."""

    kind: str
    camera_id: str
    t_start: float
    t_end: float
    fish_ids: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "camera_id": self.camera_id,
            "t_start": round(self.t_start, 3),
            "t_end": round(self.t_end, 3),
            "fish_ids": list(self.fish_ids),
        }


@dataclass(frozen=True, eq=False)
class Track:
    """One fish in one camera.

    Attributes:
        fish: the animal.
        path_xy: float64 (P, 2) head path, ~1 px apart, frame pixels (starts behind the
            first position so the body has somewhere to lie).
        path_s: float64 (P,) arc length along the path (0 at the first position).
        key_t: float64 (K,) times in seconds (increasing).
        key_s: float64 (K,) head arc length at ``key_t`` (non-decreasing; flat = resting).
        depth_phase: phase of the slow up/down motion (depth follows distance swum).
    """

    fish: FishAppearance
    path_xy: np.ndarray
    path_s: np.ndarray
    key_t: np.ndarray
    key_s: np.ndarray
    depth_phase: float

    def head_s(self, t: float | np.ndarray) -> np.ndarray:
        """Head arc length at time(s) ``t`` (seconds)."""
        return np.interp(t, self.key_t, self.key_s)

    def depth(self, head_s: float) -> float:
        """Height above the floor in [0.02, 1] (changes only while swimming)."""
        wave = 0.18 * np.sin(2 * np.pi * head_s / (10.0 * self.fish.length_px) + self.depth_phase)
        return float(np.clip(self.fish.depth + wave, 0.02, 1.0))

    def is_still(self, t: float, seconds: float) -> bool:
        """True when the fish has not moved during ``[t - seconds, t]`` (inside the clip)."""
        if t - seconds < -1e-9:
            return False
        return bool(self.head_s(t) - self.head_s(t - seconds) < 1e-6)


@dataclass(frozen=True, eq=False)
class CameraPlan:
    """Everything about one camera except pixels: tank, light direction, tracks, events."""

    camera_index: int
    camera_id: str
    tank: Tank
    light_dir: tuple[float, float]
    tracks: tuple[Track, ...]
    events: tuple[PlannedEvent, ...] = field(default=())


def camera_id_of(index: int) -> str:
    return f"cam{index}"


def plan_camera(
    config: SynthConfig,
    seed: int,
    camera_index: int,
    population: tuple[FishAppearance, ...] | None = None,
) -> CameraPlan:
    """Plan one camera's tank, light and tracks from ``(seed, camera_index)``.

    A plan whose tracks miss a planned event (a fish arriving too late) is redrawn
    (up to 8 times, deterministically); the plan that keeps most events wins.
    """
    population = population if population is not None else make_population(config, seed)
    best = _plan_once(config, seed, camera_index, population, 0)
    best_missed = sum(not event_realised(best, e) for e in best.events)
    for attempt in range(1, 8):
        if best_missed == 0:
            break
        plan = _plan_once(config, seed, camera_index, population, attempt)
        missed = sum(not event_realised(plan, e) for e in plan.events)
        if missed < best_missed:
            best, best_missed = plan, missed
    return best


def event_realised(plan: CameraPlan, event: PlannedEvent) -> bool:
    """Whether the tracks hold a planned event (rest still throughout, encounter partners close)."""
    tracks = {t.fish.fish_id: t for t in plan.tracks}
    if event.kind == "long_rest":
        track = tracks[event.fish_ids[0]]
        return track.is_still(event.t_end, event.t_end - event.t_start - 0.3)
    if event.kind in ("cross", "pair_rest"):
        a, b = (tracks[i] for i in event.fish_ids)
        t = event.t_start + (0.4 if event.kind == "pair_rest" else 0.0)
        gap = np.linalg.norm(_head_xy(a, t) - _head_xy(b, t))
        return bool(gap < 0.8 * max(a.fish.length_px, b.fish.length_px))
    return True  # "empty" is measured on the rendered ground truth


def _head_xy(track: Track, t: float) -> np.ndarray:
    s = track.head_s(t)
    return np.array([np.interp(s, track.path_s, track.path_xy[:, k]) for k in (0, 1)])


def _plan_once(
    config: SynthConfig,
    seed: int,
    camera_index: int,
    population: tuple[FishAppearance, ...],
    attempt: int,
) -> CameraPlan:
    rng = np.random.default_rng([seed, camera_index, 0, attempt])
    cam = camera_id_of(camera_index)
    tank = _make_tank(config, rng, camera_index)
    angle = rng.uniform(0, 2 * np.pi)
    light_dir = (float(np.cos(angle)), float(np.sin(angle)))
    planners = [_FishPlanner(f, config, tank, rng) for f in population]
    events = _schedule_events(config, rng, cam, camera_index, planners)
    for planner in planners:
        planner.run(config.duration_s + 0.5)
    tracks = tuple(p.track(rng) for p in planners)
    return CameraPlan(camera_index, cam, tank, light_dir, tracks, tuple(events))


def plan_events(config: SynthConfig, seed: int) -> list[PlannedEvent]:
    """The planned events of every camera (no rendering): long rests, encounters, empties."""
    population = make_population(config, seed)
    events: list[PlannedEvent] = []
    for index in range(config.num_cameras):
        events.extend(plan_camera(config, seed, index, population).events)
    return events


# --------------------------------------------------------------------------- internals


def _make_tank(config: SynthConfig, rng: np.random.Generator, camera_index: int) -> Tank:
    w, h = config.width, config.height
    center = np.array([w / 2, h / 2])
    if not config.tank_edges or camera_index % 2 == 1:
        rng.random(3)  # keep the stream aligned whatever the switch
        return Tank((float(center[0]), float(center[1])), None)
    angle, frac, size = rng.random(3)
    angle *= 2 * np.pi
    direction = np.array([np.cos(angle), np.sin(angle)])
    support = abs(w / 2 * direction[0]) + abs(h / 2 * direction[1])
    wall_distance = support * (0.62 + 0.2 * frac)  # wall crosses the outer part of the view
    radius = (2.5 + 1.5 * size) * max(w, h)
    c = center + direction * (wall_distance - radius)
    return Tank((float(c[0]), float(c[1])), float(radius))


class _FishPlanner:
    """Builds one fish's path and time schedule action by action."""

    def __init__(
        self, fish: FishAppearance, config: SynthConfig, tank: Tank, rng: np.random.Generator
    ) -> None:
        self.fish, self.config, self.tank, self.rng = fish, config, tank, rng
        self.length = fish.length_px
        self.appointments: list[_Appointment] = []
        self.busy: list[tuple[float, float]] = []
        self.segments: list[np.ndarray] = []
        self.t = 0.0
        self.s = 0.0
        self.keys_t = [0.0]
        self.keys_s = [0.0]
        self.pos: np.ndarray = np.zeros(2)
        self.heading = 0.0

    # -- places
    def waypoint(self, inset_bl: float = 0.3) -> np.ndarray:
        """A random point inside the view (inset by ``inset_bl`` lengths) and the tank."""
        w, h = self.config.width, self.config.height
        inset = min(inset_bl * self.length, 0.35 * min(w, h))
        for _ in range(200):
            p = self.rng.uniform([inset, inset], [w - inset, h - inset])
            if self.tank.inside(p, margin=1.0 * self.length):
                return p
        return np.array([w / 2, h / 2])

    def exit_point(self) -> np.ndarray | None:
        """A point outside the view (the whole fish out of it) but inside the tank."""
        w, h = self.config.width, self.config.height
        out = 1.3 * self.length + 4
        for _ in range(50):
            side = int(self.rng.integers(4))
            along = self.rng.uniform(0.1, 0.9)
            p = [
                np.array([-out, along * h]),
                np.array([w + out, along * h]),
                np.array([along * w, -out]),
                np.array([along * w, h + out]),
            ][side]
            if self.tank.inside(p, margin=0.7 * self.length):
                return p
        return None

    # -- actions
    def start(self, pos: np.ndarray, heading: float) -> None:
        self.pos, self.heading = np.asarray(pos, dtype=np.float64), float(heading)
        back = 2.5 * self.length + 10
        n = int(np.ceil(back)) + 1
        d = np.array([np.cos(heading), np.sin(heading)])
        offsets = np.linspace(-back, 0.0, n)
        self.segments.append(self.pos[None, :] + offsets[:, None] * d[None, :])

    def curve_to(self, target: np.ndarray, arrive_heading: float | None = None) -> np.ndarray:
        """Path (m, 2), ~1 px steps, from the current pose to ``target``.

        Steered with a turning radius of at least ``0.35 * length`` (no kinks or loops
        tighter than a fish can bend) and a slowly wandering heading. With
        ``arrive_heading`` the fish first swims to a point 1.2 lengths behind the target
        along that heading, then straight through to the target.
        """
        target = np.asarray(target, dtype=np.float64)
        pos, heading = self.pos.copy(), self.heading
        pieces = [pos[None, :]]
        if arrive_heading is not None:
            back = np.array([np.cos(arrive_heading), np.sin(arrive_heading)])
            approach = target - back * 1.2 * self.length
            if np.linalg.norm(approach - pos) > 0.6 * self.length:
                leg, pos, heading = self._steer(pos, heading, approach)
                pieces.append(leg)
        leg, pos, heading = self._steer(pos, heading, target)
        pieces.append(leg)
        return np.concatenate(pieces, axis=0)

    def _steer(
        self, pos: np.ndarray, heading: float, target: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Curvature-limited pursuit of ``target`` in 1 px steps; returns (points, pos, heading)."""
        radius = 0.35 * self.length
        max_turn = 1.0 / radius  # radians per pixel
        dist0 = float(np.linalg.norm(target - pos))
        limit = int(4 * dist0 + 8 * np.pi * radius + 50)
        wobble = self.rng.normal(0.0, 0.25 * max_turn, limit // 16 + 2)
        pts = np.empty((limit + 1, 2))
        n = 0
        x, y = float(pos[0]), float(pos[1])
        tx, ty = float(target[0]), float(target[1])
        for i in range(limit):
            dx, dy = tx - x, ty - y
            dist = (dx * dx + dy * dy) ** 0.5
            if dist < 1.0:
                break
            err = (math.atan2(dy, dx) - heading + math.pi) % (2 * math.pi) - math.pi
            side = 1.0 if err > 0 else -1.0
            # Centre of the turning circle on the side we turn to: if the target is inside
            # it we cannot reach it by turning; swim straight on to make room.
            cx = x - side * radius * math.sin(heading)
            cy = y + side * radius * math.cos(heading)
            if (tx - cx) ** 2 + (ty - cy) ** 2 < (0.98 * radius) ** 2:
                turn = 0.0
            else:
                turn = min(max(err, -max_turn), max_turn)
                if dist > 3 * radius:
                    turn += float(wobble[i // 16])
            heading += turn
            x += math.cos(heading)
            y += math.sin(heading)
            pts[n] = (x, y)
            n += 1
        pts[n] = (tx, ty)
        n += 1
        return pts[:n], np.array([tx, ty]), float(heading)

    def follow(self, curve: np.ndarray, speed: float) -> None:
        """Swim along ``curve`` at ``speed`` px/s."""
        length = float(np.sum(np.linalg.norm(np.diff(curve, axis=0), axis=1)))
        if length < 1e-6:
            return
        self.segments.append(curve[1:])
        self.t += length / max(speed, 1e-3)
        self.s += length
        self.keys_t.append(self.t)
        self.keys_s.append(self.s)
        self.pos = curve[-1].copy()
        tail = curve[-1] - curve[max(0, len(curve) - 4)]
        self.heading = float(np.arctan2(tail[1], tail[0]))

    def rest(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self.t += seconds
        self.keys_t.append(self.t)
        self.keys_s.append(self.s)

    def cruise(self) -> float:
        return self.fish.swim_speed_px * float(self.rng.uniform(0.75, 1.25))

    def go_to(self, target: np.ndarray, arrive_t: float, arrive_heading: float | None) -> None:
        """Arrive at ``target`` at ``arrive_t`` (wait first if early, hurry if late)."""
        curve = self.curve_to(target, arrive_heading)
        length = float(np.sum(np.linalg.norm(np.diff(curve, axis=0), axis=1)))
        cruise = self.cruise()
        available = arrive_t - self.t
        if available > length / cruise:
            self.rest(available - length / cruise)
            self.follow(curve, cruise)
        else:
            self.follow(curve, min(length / max(available, 1e-3), 3.0 * cruise))

    # -- the whole schedule
    def run(self, t_end: float) -> None:
        pos = self.waypoint()
        pending = sorted(self.appointments, key=lambda a: a.t_arrive)
        if pending:
            # Start within reach of an early first appointment.
            first = pending[0]
            reach = 0.6 * self.fish.swim_speed_px * max(first.t_arrive - 1.0, 0.0)
            away = pos - first.target
            dist = float(np.linalg.norm(away))
            if dist > reach:
                pos = first.target + away * (reach / max(dist, 1e-9))
        toward = np.array([self.config.width / 2, self.config.height / 2]) - pos
        heading = float(np.arctan2(toward[1], toward[0]) + self.rng.uniform(-1.2, 1.2))
        self.start(pos, heading)
        while self.t < t_end:
            nxt = pending[0] if pending else None
            if nxt is not None and self._must_go(nxt):
                pending.pop(0)
                self._keep(nxt, pending[0] if pending else None)
                continue
            self._free_action(nxt)

    def _must_go(self, appt: _Appointment) -> bool:
        slack = appt.t_arrive - self.t
        travel = np.linalg.norm(appt.target - self.pos) / self.fish.swim_speed_px
        return bool(slack < 1.6 * travel + 1.5)

    def _keep(self, appt: _Appointment, nxt: _Appointment | None) -> None:
        self.go_to(appt.target, appt.t_arrive, appt.arrive_heading)
        self.rest(appt.rest_s)
        if appt.then_target is not None:
            curve = self.curve_to(appt.then_target)
            speed = self.cruise()
            if nxt is None or self._fits(curve, speed, nxt):
                self.follow(curve, speed)

    def _free_action(self, nxt: _Appointment | None) -> None:
        r = self.rng.random()
        if r < 0.12:
            self.rest(float(self.rng.uniform(0.5, 3.0)))
            return
        exit_p = self.exit_point() if (r < 0.2 and self.config.enter_leave) else None
        target = exit_p if exit_p is not None else self.waypoint()
        curve = self.curve_to(target)
        speed = self.cruise()
        if nxt is not None and not self._fits(curve, speed, nxt):
            # No time for this detour: wait where we are, then keep the appointment.
            self.rest(min(1.0, max(0.1, nxt.t_arrive - self.t)))
            return
        self.follow(curve, speed)
        if exit_p is not None:
            self.rest(float(self.rng.uniform(1.0, 5.0)))  # out of view for a while

    def _fits(self, curve: np.ndarray, speed: float, nxt: _Appointment) -> bool:
        """Whether swimming ``curve`` still leaves time to reach the next appointment."""
        length = float(np.sum(np.linalg.norm(np.diff(curve, axis=0), axis=1)))
        travel = np.linalg.norm(nxt.target - curve[-1]) / self.fish.swim_speed_px
        return bool(self.t + length / speed + 1.6 * travel + 1.5 <= nxt.t_arrive)

    def track(self, rng: np.random.Generator) -> Track:
        path = np.concatenate(self.segments, axis=0)
        steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
        path_s = np.concatenate([[0.0], np.cumsum(steps)])
        back = len(self.segments[0]) - 1
        path_s = path_s - path_s[back]  # 0 at the starting position
        return Track(
            fish=self.fish,
            path_xy=path,
            path_s=path_s,
            key_t=np.asarray(self.keys_t, dtype=np.float64),
            key_s=np.asarray(self.keys_s, dtype=np.float64),
            depth_phase=float(rng.uniform(0, 2 * np.pi)),
        )

    def free(self, t0: float, t1: float) -> bool:
        return all(t1 <= a or t0 >= b for a, b in self.busy)


@dataclass
class _Appointment:
    t_arrive: float
    target: np.ndarray
    arrive_heading: float | None
    rest_s: float = 0.0
    then_target: np.ndarray | None = None


def _schedule_events(
    config: SynthConfig,
    rng: np.random.Generator,
    camera_id: str,
    camera_index: int,
    planners: list[_FishPlanner],
) -> list[PlannedEvent]:
    """Give the fish their appointments; returns the planned events (sorted by time).

    Long on purpose: one pass over the events in time order whose choices share the
    planners' state; split, the order of the seeded draws would be hard to follow.
    """
    duration = config.duration_s
    events: list[PlannedEvent] = []
    n_fish = len(planners)

    # 1. A stretch with no fish in view (cameras 1, 2, 4, 5, ...: middle or end of the clip).
    if config.empty_frames and (camera_index % 3 != 0 or config.num_cameras == 1):
        length = min(4.0, 0.12 * duration)
        if camera_index % 3 == 2:
            t_a, t_b = duration - length, duration + 1.0
        else:
            t_a = float(rng.uniform(0.4, 0.6)) * duration
            t_b = t_a + length
        ok = True
        for p in planners:
            exit_p = p.exit_point()
            if exit_p is None:
                ok = False
                break
            ret = p.waypoint() if t_b < duration else None
            p.appointments.append(_Appointment(t_a - 0.2, exit_p, None, t_b - t_a + 0.2, ret))
            p.busy.append((t_a - 6.0, t_b + 2.0))
        if ok:
            events.append(PlannedEvent("empty", camera_id, t_a, min(t_b, duration), ()))
        else:
            for p in planners:
                p.appointments.clear()
                p.busy.clear()

    # 2. Long still episodes, fully in view; the first one goes to the faintest fish.
    if config.stationary:
        lo, hi = config.long_rest_seconds
        for k in range(config.long_rests_per_camera):
            for _ in range(60):
                rest = float(rng.uniform(lo, hi))
                latest = duration - rest - 0.3
                if latest < 0.5:
                    break
                t0 = float(rng.uniform(min(1.5, latest), latest))
                fish_index = 0 if k == 0 and camera_index % 2 == 0 else int(rng.integers(n_fish))
                p = planners[fish_index]
                if not p.free(t0 - 5.0, t0 + rest + 1.0):
                    continue
                spot = p.waypoint(inset_bl=1.1)
                p.appointments.append(_Appointment(t0, spot, None, rest, None))
                p.busy.append((t0 - 5.0, t0 + rest + 1.0))
                events.append(
                    PlannedEvent("long_rest", camera_id, t0, t0 + rest, (p.fish.fish_id,))
                )
                break

    # 3. Encounters: two fish crossing over each other, or resting side by side.
    if config.touching and n_fish >= 2:
        count = max(1, int(round(config.encounters_per_minute * duration / 60.0)))
        for _ in range(count):
            for _try in range(60):
                i, j = (int(v) for v in rng.choice(n_fish, size=2, replace=False))
                a, b = planners[i], planners[j]
                kind = "pair_rest" if rng.random() < 0.35 else "cross"
                hold = float(rng.uniform(1.5, 4.0)) if kind == "pair_rest" else 0.0
                earliest = min(1.0, duration * 0.2)
                t0 = float(rng.uniform(earliest, max(duration - hold - 0.5, earliest)))
                window = (t0 - 4.0, t0 + hold + 1.5)
                if not (a.free(*window) and b.free(*window)):
                    continue
                margin = 1.1 * max(a.length, b.length)
                w, h = config.width, config.height
                if 2 * margin >= min(w, h):
                    margin = 0.3 * min(w, h)
                point = rng.uniform([margin, margin], [w - margin, h - margin])
                if not (
                    a.tank.inside(point, 1.2 * a.length) and b.tank.inside(point, 1.2 * b.length)
                ):
                    continue
                heading_a = float(rng.uniform(0, 2 * np.pi))
                dir_a = np.array([np.cos(heading_a), np.sin(heading_a)])
                ahead_a = point + dir_a * 1.5 * a.length
                if kind == "cross":
                    turn = float(rng.choice([-1, 1]) * rng.uniform(0.6, 2.4))
                    heading_b = heading_a + turn
                    dir_b = np.array([np.cos(heading_b), np.sin(heading_b)])
                    meet_b = point - dir_a * 0.4 * a.length  # b's head crosses a's mid-body
                    a.appointments.append(_Appointment(t0, point, heading_a, 0.0, ahead_a))
                    b.appointments.append(
                        _Appointment(t0, meet_b, heading_b, 0.0, meet_b + dir_b * 1.5 * b.length)
                    )
                else:
                    side = float(rng.choice([-1, 1]))
                    perp = np.array([-dir_a[1], dir_a[0]]) * side
                    gap = 0.85 * (a.fish.half_width_px + b.fish.half_width_px)
                    spot_b = point + perp * gap + dir_a * float(rng.uniform(-0.3, 0.3)) * a.length
                    heading_b = heading_a + float(rng.uniform(-0.35, 0.35))
                    a.appointments.append(_Appointment(t0, point, heading_a, hold + 0.4, None))
                    b.appointments.append(_Appointment(t0 + 0.4, spot_b, heading_b, hold, None))
                a.busy.append(window)
                b.busy.append(window)
                events.append(
                    PlannedEvent(kind, camera_id, t0, t0 + hold, (a.fish.fish_id, b.fish.fish_id))
                )
                break
    return sorted(events, key=lambda e: (e.t_start, e.kind))
