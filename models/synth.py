"""Synthetic DVS gestures: a moving body and arms per class, seen by a simulated 128x128 DVS.

Conventions (written down once, tested in tests/test_synth.py):

* The camera faces the subject and the image is **not mirrored**: the subject's *right* hand appears on
  the image's *left* (small ``x``). Pixel ``(x, y)`` has ``x`` to the right and ``y`` down (row 0 at top).
* "Clockwise" is as seen **by the camera**, i.e. on the image displayed with ``y`` down: the hand moves
  right along the top of its circle. In image coordinates a clockwise path has a positive shoelace sum
  ``sum(x_i * y_{i+1} - x_{i+1} * y_i)``.
* Hence mirroring an image left-right turns the right arm into the left one and reverses the rotation:
  labels swap 1 <-> 2, 3 <-> 6, 4 <-> 5 (:data:`MIRROR_LABEL`); 0, 7, 8, 9, 10 keep their label.

The scene (:func:`scene_geometry`) is a torso, a head and two 2-link arms (capsules with soft edges) in
"body units" scaled by the user's size, rendered at 1 kHz. The pixel model (:func:`_simulate`, numba)
compares each pixel's log intensity with its reference level and emits one event per threshold crossing,
timed by linear interpolation within the frame: contrast thresholds ~0.2 with per-pixel mismatch
(sigma 0.03), a 0.5 ms refractory period, then background noise, hot pixels and timestamp jitter are
added. Per user: body size and position, speed, amplitude, clothing and skin reflectance. Per lighting
session: illumination, mean threshold, noise rate and jitter. Per take: frequency, amplitude, phase,
body sway and idle-hand motion. Every random draw comes from ``SeedSequence([seed, user, session,
label])``, so a dataset is the same whatever the number of workers.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from s2gesture.daemon.card import GESTURE_CLASSES, GESTURE_MIRROR, MIRROR_WITH_NONE
from s2gesture.daemon.events import EVENT_DTYPE, Events, Recording

SENSOR_SIZE = (128, 128)
FRAME_US = 1000  # rendering period: 1 kHz, events are timed within a frame by interpolation
N_CLASSES = len(GESTURE_CLASSES)
#: label of the background class "none" (distractor scenes: :data:`DISTRACTORS`), written only with ``with_none``
NONE_LABEL = N_CLASSES
#: label -> label of the left-right mirrored gesture (the table lives next to the class names)
MIRROR_LABEL: dict[int, int] = dict(enumerate(MIRROR_WITH_NONE))
#: labels whose mirror image is the same gesture: a left-handed user performs these mirrored
SELF_MIRRORED = tuple(label for label, m in enumerate(GESTURE_MIRROR) if m == label)

Array = npt.NDArray[np.float64]


# --- parameters ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lighting:
    """A lighting condition: illumination (relative), mean contrast threshold, noise rate, jitter."""

    illumination: float
    threshold: float
    noise_hz: float
    jitter_us: float


#: tonic's five DVS Gesture lighting tags -> sensor conditions
LIGHTINGS: dict[str, Lighting] = {
    "fluorescent": Lighting(illumination=0.6, threshold=0.21, noise_hz=0.4, jitter_us=40.0),
    "fluorescent_led": Lighting(illumination=0.8, threshold=0.20, noise_hz=0.3, jitter_us=30.0),
    "lab": Lighting(illumination=0.7, threshold=0.22, noise_hz=0.5, jitter_us=40.0),
    "led": Lighting(illumination=1.0, threshold=0.19, noise_hz=0.2, jitter_us=25.0),
    "natural": Lighting(illumination=0.35, threshold=0.23, noise_hz=0.9, jitter_us=60.0),
}
DARK_CURRENT = 0.02  # added to illumination x reflectance before the log: dim scenes lose contrast


@dataclass(frozen=True)
class User:
    """One subject: size (px per body unit), torso centre (px), speed and amplitude factors, reflectances."""

    user: int
    scale_px: float
    cx: float
    cy: float
    speed: float
    amplitude: float
    shirt: float
    skin: float
    background: float
    #: +1 right-handed, -1 left-handed (performs the self-mirrored gestures mirrored)
    handed: int = 1


@dataclass(frozen=True)
class Take:
    """One performance of a gesture: frequency/amplitude factors, phase, sway and a seed for free motion."""

    freq: float = 1.0
    amp: float = 1.0
    phase: float = 0.0
    sway_px: float = 0.0
    sway_hz: float = 0.3
    bob_px: float = 0.0
    idle_seed: int = 0
    #: for the "none" label: the kind of distractor scene (a key of DISTRACTORS)
    distractor: str = ""


@dataclass(frozen=True, eq=False)
class Camera:
    """The sensor: per-pixel ON/OFF thresholds relative to the lighting mean, hot pixels, refractory."""

    threshold_gain_on: npt.NDArray[np.float32]  # [H, W], mean 1
    threshold_gain_off: npt.NDArray[np.float32]
    hot_x: npt.NDArray[np.int64]
    hot_y: npt.NDArray[np.int64]
    hot_hz: npt.NDArray[np.float64]
    refractory_us: float = 500.0


def make_camera(seed: int, sensor_size: tuple[int, int] = SENSOR_SIZE, mismatch: float = 0.03) -> Camera:
    """The dataset's one camera: threshold mismatch ``mismatch`` (absolute, at threshold 0.2) and hot pixels."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA3E7A]))
    W, H = sensor_size
    rel = mismatch / 0.2
    gains = np.clip(1.0 + rel * rng.standard_normal((2, H, W)), 0.3, None).astype(np.float32)
    n_hot = 5
    return Camera(
        threshold_gain_on=gains[0],
        threshold_gain_off=gains[1],
        hot_x=rng.integers(0, W, n_hot),
        hot_y=rng.integers(0, H, n_hot),
        hot_hz=rng.uniform(5.0, 60.0, n_hot),
    )


def make_user(seed: int, user: int, sensor_size: tuple[int, int] = SENSOR_SIZE) -> User:
    """The subject ``user`` of dataset ``seed`` (body size, position, speed, amplitude, reflectances, hand).

    The subject's size and offset from the sensor's centre are in pixels, so the same user on a bigger
    sensor is the same figure with more wall around it (a camera with the same lens and pixel pitch).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, user, 0x05E2]))
    background = rng.uniform(0.12, 0.5)
    # Clothing anywhere from black to white, mid-greys included (weak edges), but never within 0.05 of
    # the wall: a shirt exactly the wall's grey has no edge at all, and no camera sees that body.
    shirt = rng.uniform(0.03, 0.95)
    while abs(shirt - background) < 0.05:
        shirt = rng.uniform(0.03, 0.95)
    skin = rng.uniform(0.3, 0.85)
    scale = rng.uniform(20.0, 36.0)
    W, H = sensor_size
    return User(
        user=user,
        scale_px=scale,
        cx=(W - 1) / 2 + rng.uniform(-14.0, 14.0),
        # the head stays in frame: body units reach 1.75 above the torso centre (raised hand)
        cy=H / 2 + 16.0 + rng.uniform(-8.0, 10.0) - max(0.0, scale - 30.0),
        speed=rng.uniform(0.7, 1.4),
        amplitude=rng.uniform(0.75, 1.25),
        shirt=shirt,
        skin=skin,
        background=background,
        handed=-1 if rng.random() < 0.15 else 1,
    )


def make_take(rng: np.random.Generator) -> Take:
    """Random take-to-take variation of one performance."""
    return Take(
        freq=float(np.clip(rng.normal(1.0, 0.1), 0.75, 1.3)),
        amp=float(np.clip(rng.normal(1.0, 0.1), 0.75, 1.3)),
        phase=float(rng.uniform(0.0, 2.0 * np.pi)),
        sway_px=float(rng.uniform(-1.5, 1.5)),
        sway_hz=float(rng.uniform(0.15, 0.6)),
        bob_px=float(rng.uniform(0.0, 1.0)),
        idle_seed=int(rng.integers(0, 2**31)),
    )


# --- the scene: body units, u to the image's right, v down; the subject's right side is u < 0 -----------

SHOULDER = np.array([-0.55, -0.95])  # subject's right shoulder (mirror u for the left one)
REST = np.array([-0.75, 0.45])  # right hand hanging at the hip
UPPER_ARM, FOREARM = 0.8, 0.75
# primitives in painting order: torso, head, R upper arm, L upper arm, R forearm, L forearm, R hand, L hand
N_PRIMITIVES = 8

Motion = Callable[[Array, Take, User], tuple[Array, Array, float, float]]


def _idle(t: Array, take: Take, side: int, amount: float = 0.05) -> Array:
    """Small slow wandering of a hand that does not gesture (deterministic per take and side)."""
    rng = np.random.default_rng([take.idle_seed, side])
    f = rng.uniform(0.2, 0.8, 2)
    ph = rng.uniform(0.0, 2.0 * np.pi, 2)
    return amount * np.stack(
        [np.sin(2 * np.pi * f[0] * t + ph[0]), np.sin(2 * np.pi * f[1] * t + ph[1])], axis=1
    )


def _rest(t: Array, take: Take, side: int) -> Array:
    return REST + _idle(t, take, side)


def _omega(base_hz: float, take: Take, user: User) -> float:
    return 2.0 * np.pi * base_hz * take.freq * user.speed


def _clap(t: Array, take: Take, user: User) -> tuple[Array, Array, float, float]:
    w = _omega(2.0, take, user)
    sep = 0.07 + 0.42 * take.amp * user.amplitude * 0.5 * (1.0 + np.cos(w * t + take.phase))
    v = -0.25 + 0.04 * np.sin(w * t + take.phase)
    right = np.stack([-sep, v], axis=1)
    left = np.stack([sep, v], axis=1)
    return right, left, 1.0, 1.0


def _right_wave(t: Array, take: Take, user: User) -> tuple[Array, Array, float, float]:
    w = _omega(2.5, take, user)
    a = 0.3 * take.amp * user.amplitude
    right = np.stack([-0.85 + a * np.sin(w * t + take.phase), -1.75 + 0.05 * np.cos(2 * w * t)], axis=1)
    return right, _rest(t, take, 1), -1.0, 1.0


def _right_circle(direction: float) -> Motion:
    def motion(t: Array, take: Take, user: User) -> tuple[Array, Array, float, float]:
        # direction +1: theta grows, which is clockwise on the displayed image (y down).
        w = _omega(1.0, take, user)
        r = 0.72 * take.amp * user.amplitude
        theta = direction * (w * t + take.phase)
        right = np.stack([-0.72 + r * np.cos(theta), -0.95 + r * np.sin(theta)], axis=1)
        return right, _rest(t, take, 1), 1.0, 1.0

    return motion


def _arm_roll(t: Array, take: Take, user: User) -> tuple[Array, Array, float, float]:
    w = _omega(1.5, take, user)
    r = 0.2 * take.amp * user.amplitude
    theta = w * t + take.phase
    c, s = np.cos(theta), np.sin(theta)
    right = np.stack([-0.12 + r * c, -0.15 + r * s], axis=1)
    left = np.stack([0.12 - r * c, -0.15 - r * s], axis=1)
    return right, left, 1.0, 1.0


def _air_drums(t: Array, take: Take, user: User) -> tuple[Array, Array, float, float]:
    w = _omega(3.0, take, user)
    a = 0.32 * take.amp * user.amplitude
    right = np.stack([-0.45 + 0 * t, 0.35 - a * np.maximum(0.0, np.sin(w * t + take.phase))], axis=1)
    left = np.stack([0.45 + 0 * t, 0.35 - a * np.maximum(0.0, np.sin(w * t + take.phase + np.pi))], axis=1)
    return right, left, 1.0, 1.0


def _air_guitar(t: Array, take: Take, user: User) -> tuple[Array, Array, float, float]:
    w = _omega(4.0, take, user)
    a = 0.18 * take.amp * user.amplitude
    right = np.stack([-0.15 + 0.05 * np.sin(0.5 * w * t), 0.35 + a * np.sin(w * t + take.phase)], axis=1)
    left = np.array([1.0, -0.45]) + _idle(t, take, 1, 0.03)
    return right, left, 1.0, 1.0


def _other(t: Array, take: Take, user: User) -> tuple[Array, Array, float, float]:
    rng = np.random.default_rng([take.idle_seed, 99])
    hands = []
    for side in (-1.0, 1.0):
        centre = np.array([side * rng.uniform(0.3, 0.8), rng.uniform(-0.7, 0.4)])
        path = np.zeros((t.shape[0], 2))
        for _ in range(3):
            f = rng.uniform(0.25, 1.4, 2) * take.freq * user.speed
            amp = rng.uniform(0.05, 0.22, 2) * take.amp * user.amplitude
            ph = rng.uniform(0, 2 * np.pi, 2)
            path[:, 0] += amp[0] * np.sin(2 * np.pi * f[0] * t + ph[0])
            path[:, 1] += amp[1] * np.sin(2 * np.pi * f[1] * t + ph[1])
        hands.append(centre + path)
    return hands[0], hands[1], 1.0, 1.0


def _no_gesture(t: Array, take: Take, user: User) -> tuple[Array, Array, float, float]:
    """Hands of a person who is not gesturing: hanging and fidgeting, swinging while walking."""
    if take.distractor == "walk":
        w = 2.0 * np.pi * 0.9 * user.speed
        swing = 0.12 * np.sin(w * t + take.phase)
        right = REST + np.stack([swing, 0 * t], axis=1)
        left = REST * np.array([-1.0, 1.0]) + np.stack([-swing, 0 * t], axis=1)
        return right, left, -1.0, -1.0
    amount = 0.1 if take.distractor == "idle" else 0.05
    return REST + _idle(t, take, 0, amount), REST * np.array([-1.0, 1.0]) + _idle(t, take, 1, amount), -1.0, -1.0


#: kinds of "no gesture" scene and how often each is drawn: a person standing still (sway, fidgeting
#: hands), walking across the view, a shaking camera in a cluttered room, a flickering lamp, and moving
#: background objects (a swinging lamp cord, a passing ball) while the person stands
DISTRACTORS: dict[str, float] = {"idle": 0.3, "walk": 0.2, "shake": 0.2, "flicker": 0.15, "clutter": 0.15}
#: the kind name that asks for a distractor drawn from :data:`DISTRACTORS` (``extra_none``)
ANY_DISTRACTOR = "any"


def _mirrored(motion: Motion) -> Motion:
    """The left-right mirror of a motion: arms swap sides, u changes sign, elbows bend the mirrored way."""

    def mirrored(t: Array, take: Take, user: User) -> tuple[Array, Array, float, float]:
        right, left, bend_r, bend_l = motion(t, take, user)
        flip = np.array([-1.0, 1.0])
        return left * flip, right * flip, bend_l, bend_r

    return mirrored


#: label -> motion(t_s, take, user) -> (right hand [F, 2], left hand [F, 2], right bend, left bend)
MOTIONS: dict[int, Motion] = {
    0: _clap,
    1: _right_wave,
    2: _mirrored(_right_wave),
    3: _right_circle(+1.0),
    4: _right_circle(-1.0),
    5: _mirrored(_right_circle(-1.0)),
    6: _mirrored(_right_circle(+1.0)),
    7: _arm_roll,
    8: _air_drums,
    9: _air_guitar,
    10: _other,
    NONE_LABEL: _no_gesture,
}


def _arm(shoulder: Array, hand: Array, bend: float) -> tuple[Array, Array]:
    """Two-link inverse kinematics: elbow and (reach-clamped) hand for a shoulder and hand target [F, 2]."""
    d_vec = hand - shoulder
    d = np.linalg.norm(d_vec, axis=1, keepdims=True)
    d = np.maximum(d, 1e-6)
    direction = d_vec / d
    reach = np.clip(d, abs(UPPER_ARM - FOREARM) + 1e-3, (UPPER_ARM + FOREARM) * 0.999)
    cos_a = (UPPER_ARM**2 + reach**2 - FOREARM**2) / (2 * UPPER_ARM * reach)
    ang = bend * np.arccos(np.clip(cos_a, -1.0, 1.0))
    c, s = np.cos(ang), np.sin(ang)
    rot = np.concatenate(
        [direction[:, :1] * c - direction[:, 1:] * s, direction[:, :1] * s + direction[:, 1:] * c], axis=1
    )
    return shoulder + UPPER_ARM * rot, shoulder + direction * reach


def _distractor_offsets(take: Take, user: User, t_s: Array, sensor_size: tuple[int, int]) -> tuple[Array, Array]:
    """Body offset and camera offset (px, ``[F, 2]`` each) of a "none" scene; zeros for the other kinds."""
    F = t_s.shape[0]
    body, camera = np.zeros((F, 2)), np.zeros((F, 2))
    rng = np.random.default_rng([take.idle_seed, 7])
    if take.distractor == "walk":
        # across the whole view at 0.5-1.5 body heights per second, from either side, bobbing with the steps
        W = sensor_size[0]
        v = rng.uniform(0.5, 1.5) * 3.0 * user.scale_px * (1 if rng.random() < 0.5 else -1)
        start = -np.sign(v) * rng.uniform(0.3, 0.7) * W
        body[:, 0] = start + v * t_s + (W - 1) / 2 - user.cx
        body[:, 1] = 1.5 * np.abs(np.sin(2 * np.pi * 0.9 * user.speed * t_s + take.phase))
    elif take.distractor == "shake":
        # hand-held or vibrating mount: a sum of a few 3-12 Hz sinusoids, 1-4 px peak
        amp = rng.uniform(1.0, 4.0)
        for _ in range(3):
            f, ph = rng.uniform(3.0, 12.0, 2), rng.uniform(0.0, 2.0 * np.pi, 2)
            camera += amp / 3 * np.stack([np.sin(2 * np.pi * f[0] * t_s + ph[0]), np.sin(2 * np.pi * f[1] * t_s + ph[1])], axis=1)
    return body, camera


def _clutter(take: Take, t_s: Array, sensor_size: tuple[int, int], background: float) -> tuple[Array, Array]:
    """Background objects ``[F, K, 5]`` and reflectances ``[K]``: static furniture edges ("shake"), or a
    swinging cord and a ball crossing the view ("clutter"); none for the other kinds."""
    F, (W, H) = t_s.shape[0], sensor_size
    rng = np.random.default_rng([take.idle_seed, 11])
    parts: list[tuple[Array, float]] = []
    if take.distractor == "shake":
        for _ in range(3):  # shelf edges and a door frame: long thin capsules near the borders
            x = rng.uniform(0.05, 0.25) * W if rng.random() < 0.5 else rng.uniform(0.75, 0.95) * W
            cap = np.array([x, rng.uniform(0.0, 0.4) * H, x + rng.uniform(-8, 8), rng.uniform(0.6, 1.0) * H, rng.uniform(1.5, 4.0)])
            parts.append((np.repeat(cap[None], F, axis=0), float(rng.uniform(0.03, 0.95))))
    elif take.distractor == "clutter":
        # a cord swinging from the ceiling at one side, 0.5-1.5 Hz
        x0 = rng.uniform(0.05, 0.2) * W if rng.random() < 0.5 else rng.uniform(0.8, 0.95) * W
        length = rng.uniform(0.25, 0.5) * H
        ang = rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t_s)
        cord = np.stack([np.full(F, x0), np.zeros(F), x0 + length * np.sin(ang), length * np.cos(ang), np.full(F, 1.5)], axis=1)
        parts.append((cord, float(rng.uniform(0.03, 0.95))))
        # a ball crossing the upper part of the view once, at 1-3 view widths per second
        v = rng.uniform(1.0, 3.0) * W * (1 if rng.random() < 0.5 else -1)
        t_cross = rng.uniform(0.0, max(float(t_s[-1]) - 0.3, 0.01))
        bx = (W / 2 - np.sign(v) * 0.7 * W) + v * (t_s - t_cross)
        by = rng.uniform(0.1, 0.35) * H + 0 * t_s
        r = rng.uniform(2.0, 5.0)
        parts.append((np.stack([bx, by, bx, by, np.full(F, r)], axis=1), float(rng.uniform(0.03, 0.95))))
    if not parts:
        return np.zeros((F, 0, 5)), np.zeros(0)
    shades = np.array([sh if abs(sh - background) >= 0.05 else min(sh + 0.3, 0.95) for _, sh in parts])
    return np.stack([seg for seg, _ in parts], axis=1), shades


def scene_geometry(
    label: int, user: User, take: Take, t_s: Array, *, mirror: bool = False,
    sensor_size: tuple[int, int] = SENSOR_SIZE,
) -> tuple[Any, Any]:
    """Capsules per frame ``[F, K, 5]`` (ax, ay, bx, by, radius in px) and their reflectances ``[K]``.

    ``K`` is the body's 8 primitives plus a "none" scene's background objects. ``mirror`` reflects the
    whole scene about the sensor's vertical centre line (x -> W - 1 - x).
    """
    right, left, bend_r, bend_l = MOTIONS[label](t_s, take, user)
    F = t_s.shape[0]
    sway = (
        np.stack(
            [
                take.sway_px * np.sin(2 * np.pi * take.sway_hz * t_s),
                take.bob_px * np.sin(4 * np.pi * take.sway_hz * t_s + 1.0),
            ],
            axis=1,
        )
        / user.scale_px
    )
    sh_r = SHOULDER + sway
    sh_l = SHOULDER * np.array([-1.0, 1.0]) + sway
    # Elbows bend by +angle on the right arm and -angle on the left: mirror images of each other.
    elbow_r, hand_r = _arm(sh_r, right + sway, bend_r)
    elbow_l, hand_l = _arm(sh_l, left + sway, -bend_l)
    neck, hip = np.array([0.0, -0.75]) + sway, np.array([0.0, 0.9]) + sway
    head = np.array([0.0, -1.45]) + sway
    seg = np.empty((F, N_PRIMITIVES, 5))
    parts = [
        (neck, hip, 0.45),
        (head, head, 0.3),
        (sh_r, elbow_r, 0.12),
        (sh_l, elbow_l, 0.12),
        (elbow_r, hand_r, 0.1),
        (elbow_l, hand_l, 0.1),
        (hand_r, hand_r, 0.15),
        (hand_l, hand_l, 0.15),
    ]
    for i, (a, b, radius) in enumerate(parts):
        seg[:, i, 0:2] = a
        seg[:, i, 2:4] = b
        seg[:, i, 4] = radius
    seg[:, :, :4] *= user.scale_px
    seg[:, :, 4] *= user.scale_px
    seg[:, :, [0, 2]] += user.cx
    seg[:, :, [1, 3]] += user.cy
    shade = np.array(
        [user.shirt, user.skin, user.shirt, user.shirt, user.skin, user.skin, user.skin, user.skin]
    )
    if label == NONE_LABEL:
        body, camera = _distractor_offsets(take, user, t_s, sensor_size)
        seg[:, :, [0, 2]] += (body[:, 0] + camera[:, 0])[:, None, None]
        seg[:, :, [1, 3]] += (body[:, 1] + camera[:, 1])[:, None, None]
        objects, object_shade = _clutter(take, t_s, sensor_size, user.background)
        objects[:, :, [0, 2]] += camera[:, None, 0:1]
        objects[:, :, [1, 3]] += camera[:, None, 1:2]  # [F, 1, 1] against [F, K, 2]
        # background objects are painted first: the person stands in front of them
        seg = np.ascontiguousarray(np.concatenate([objects, seg], axis=1))
        shade = np.concatenate([object_shade, shade])
    if mirror:
        seg[:, :, [0, 2]] = (sensor_size[0] - 1) - seg[:, :, [0, 2]]
    return seg, shade


# --- rendering and the DVS pixel model (numba) -----------------------------------------------------------


@njit(cache=True)
def _bbox(seg: Any, H: int, W: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = W, H, 0, 0
    for p in range(seg.shape[0]):
        r = seg[p, 4] + 1.0
        x0 = min(x0, math.floor(min(seg[p, 0], seg[p, 2]) - r))
        x1 = max(x1, math.ceil(max(seg[p, 0], seg[p, 2]) + r) + 1)
        y0 = min(y0, math.floor(min(seg[p, 1], seg[p, 3]) - r))
        y1 = max(y1, math.ceil(max(seg[p, 1], seg[p, 3]) + r) + 1)
    return max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)


@njit(cache=True)
def _paint(canvas: Any, seg: Any, shade: Any) -> None:
    """Composite soft-edged capsules (1 px anti-aliased border) over ``canvas``, in order."""
    H, W = canvas.shape
    for p in range(seg.shape[0]):
        ax, ay, bx, by, r = seg[p, 0], seg[p, 1], seg[p, 2], seg[p, 3], seg[p, 4]
        x0 = max(math.floor(min(ax, bx) - r - 1.0), 0)
        x1 = min(math.ceil(max(ax, bx) + r + 1.0) + 1, W)
        y0 = max(math.floor(min(ay, by) - r - 1.0), 0)
        y1 = min(math.ceil(max(ay, by) + r + 1.0) + 1, H)
        dx, dy = bx - ax, by - ay
        ll = dx * dx + dy * dy
        for y in range(y0, y1):
            for x in range(x0, x1):
                px, py = x - ax, y - ay
                h = 0.0
                if ll > 0.0:
                    h = min(max((px * dx + py * dy) / ll, 0.0), 1.0)
                qx, qy = px - h * dx, py - h * dy
                alpha = r + 0.5 - math.sqrt(qx * qx + qy * qy)
                if alpha <= 0.0:
                    continue
                if alpha > 1.0:
                    alpha = 1.0
                canvas[y, x] = canvas[y, x] * (1.0 - alpha) + shade[p] * alpha


@njit(cache=True)
def _render(seg: Any, shade: Any, background: Any, frames: Any) -> Any:
    """Reflectance images ``[len(frames), H, W]`` of the given frame indices (for tests and `show`)."""
    H, W = background.shape
    out = np.empty((frames.shape[0], H, W))
    for i in range(frames.shape[0]):
        canvas = background.copy()
        _paint(canvas, seg[frames[i]], shade)
        out[i] = canvas
    return out


@njit(cache=True)
def _simulate(
    seg: Any,
    shade: Any,
    background: Any,
    illumination: float,
    dark: float,
    thr_on: Any,
    thr_off: Any,
    refractory_us: float,
    frame_us: float,
    out_x: Any,
    out_y: Any,
    out_p: Any,
    out_t: Any,
) -> int:
    """Render every frame and run the DVS pixel model; returns the event count (may exceed the buffers)."""
    F = seg.shape[0]
    H, W = background.shape
    cap = out_x.shape[0]
    canvas = background.copy()
    previous = background.copy()  # reflectance at the previous frame
    log_prev = np.log(illumination * background + dark)
    reference = log_prev.copy()
    last_t = np.full((H, W), -1e18)
    n = 0
    bx0, by0, bx1, by1 = 0, 0, 0, 0
    for f in range(F):
        cx0, cy0, cx1, cy1 = _bbox(seg[f], H, W)
        # Only the union of this frame's and the previous frame's figure can change.
        x0, y0 = min(cx0, bx0) if f else cx0, min(cy0, by0) if f else cy0
        x1, y1 = max(cx1, bx1) if f else cx1, max(cy1, by1) if f else cy1
        bx0, by0, bx1, by1 = cx0, cy0, cx1, cy1
        for y in range(y0, y1):
            for x in range(x0, x1):
                canvas[y, x] = background[y, x]
        _paint(canvas, seg[f], shade)
        t_frame = (f - 1) * frame_us  # the change from frame f-1 to f happens during [t_frame, t_frame + dt)
        for y in range(y0, y1):
            for x in range(x0, x1):
                value = canvas[y, x]
                if value == previous[y, x]:
                    continue
                previous[y, x] = value
                l1 = math.log(illumination * value + dark)
                l0 = log_prev[y, x]
                log_prev[y, x] = l1
                if f == 0:
                    reference[y, x] = l1
                    continue
                ref = reference[y, x]
                span = l1 - l0
                c_on = thr_on[y, x]
                c_off = thr_off[y, x]
                while l1 - ref >= c_on:
                    ref += c_on
                    frac = min(max((ref - l0) / span, 0.0), 1.0) if span != 0.0 else 1.0
                    te = t_frame + frac * frame_us
                    if te - last_t[y, x] >= refractory_us:
                        last_t[y, x] = te
                        if n < cap:
                            out_x[n], out_y[n], out_p[n], out_t[n] = x, y, True, te
                        n += 1
                while ref - l1 >= c_off:
                    ref -= c_off
                    frac = min(max((ref - l0) / span, 0.0), 1.0) if span != 0.0 else 1.0
                    te = t_frame + frac * frame_us
                    if te - last_t[y, x] >= refractory_us:
                        last_t[y, x] = te
                        if n < cap:
                            out_x[n], out_y[n], out_p[n], out_t[n] = x, y, False, te
                        n += 1
                reference[y, x] = ref
    return n


def _background(rng: np.random.Generator, level: float, sensor_size: tuple[int, int]) -> Array:
    """A static wall: smooth low-frequency texture around ``level`` (static, so it makes no events)."""
    W, H = sensor_size
    coarse = rng.uniform(0.75, 1.25, (6, 6))
    ys = np.linspace(0, 5, H)
    xs = np.linspace(0, 5, W)
    rows = np.array([np.interp(xs, np.arange(6), coarse[i]) for i in range(6)])
    img = np.array([np.interp(ys, np.arange(6), rows[:, j]) for j in range(W)]).T
    return np.ascontiguousarray(level * img)


def lighting_of(session: str) -> Lighting:
    """The lighting of a session tag (``led``, ``natural2``...: trailing digits mark a repeat)."""
    base = session.rstrip("0123456789")
    if base not in LIGHTINGS:
        msg = f"lighting: unknown tag {session!r}; known: {', '.join(LIGHTINGS)} (optionally followed by digits)"
        raise ValueError(msg)
    return LIGHTINGS[base]


def session_lightings(user: int, repeats: int) -> list[str]:
    """Lighting tags of a user's ``repeats`` sessions (rotating through the five, then numbered)."""
    names = list(LIGHTINGS)
    out = []
    for k in range(repeats):
        name = names[(user + k) % len(names)]
        out.append(name if k < len(names) else f"{name}{k // len(names) + 1}")
    return out


def simulate(
    label: int,
    user: User,
    lighting: Lighting,
    camera: Camera,
    take: Take,
    rng: np.random.Generator,
    *,
    duration_s: float = 6.0,
    t0_us: int = 0,
    mirror: bool = False,
    noise: bool = True,
) -> Events:
    """Events (µs, sorted) of one take of gesture ``label``; times start at ``t0_us``.

    The sensor's size is the camera's (:func:`make_camera`).
    """
    H, W = camera.threshold_gain_on.shape
    n_frames = round(duration_s * 1e6 / FRAME_US) + 1
    t_s = np.arange(n_frames, dtype=np.float64) * (FRAME_US * 1e-6)
    seg, shade = scene_geometry(label, user, take, t_s, mirror=mirror, sensor_size=(W, H))
    background = _background(rng, user.background, (W, H))
    if mirror:
        background = np.ascontiguousarray(background[:, ::-1])
    thr_on = (lighting.threshold * camera.threshold_gain_on).astype(np.float64)
    thr_off = (lighting.threshold * camera.threshold_gain_off).astype(np.float64)
    cap = max(200_000, int(400_000 * duration_s))
    while True:
        xs = np.empty(cap, np.int16)
        ys = np.empty(cap, np.int16)
        ps = np.empty(cap, np.bool_)
        ts = np.empty(cap, np.float64)
        n = _simulate(
            seg, shade, background, lighting.illumination, DARK_CURRENT, thr_on, thr_off,
            camera.refractory_us, float(FRAME_US), xs, ys, ps, ts,
        )  # fmt: skip
        if n <= cap:
            break
        cap = int(n * 1.1)
    t_us = ts[:n] + rng.normal(0.0, lighting.jitter_us, n)
    parts = [(xs[:n], ys[:n], ps[:n], t_us)]
    duration_us = (n_frames - 1) * FRAME_US
    if label == NONE_LABEL and take.distractor == "flicker":
        parts.append(_flicker_events(take, (W, H), duration_us))
    if noise:
        # Background activity: Poisson in space and time, either polarity.
        n_bg = rng.poisson(lighting.noise_hz * W * H * duration_s)
        parts.append(
            (
                rng.integers(0, W, n_bg).astype(np.int16),
                rng.integers(0, H, n_bg).astype(np.int16),
                rng.random(n_bg) < 0.5,
                rng.uniform(0, duration_us, n_bg),
            )
        )
        for hx, hy, hz in zip(camera.hot_x, camera.hot_y, camera.hot_hz, strict=True):
            k = rng.poisson(hz * duration_s)
            parts.append(
                (
                    np.full(k, hx, np.int16),
                    np.full(k, hy, np.int16),
                    rng.random(k) < 0.5,
                    rng.uniform(0, duration_us, k),
                )
            )
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    p = np.concatenate([p[2] for p in parts])
    t = np.clip(np.round(np.concatenate([p[3] for p in parts])), 0, duration_us - 1).astype(np.int64)
    order = np.argsort(t, kind="stable")
    events = np.empty(order.shape[0], dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = x[order], y[order], p[order], t[order] + t0_us
    return events


def _flicker_events(take: Take, sensor_size: tuple[int, int], duration_us: int) -> tuple[Any, Any, Any, Any]:
    """A lamp flickering at twice the mains frequency over part of the view (event level, not rendered).

    Every pixel of the lit rectangle sees the same relative change each half period, so it fires ON as the
    lamp brightens and OFF as it dims with a probability set by the flicker depth against its threshold
    (drawn per scene), jittered by 0.3 ms.
    """
    rng = np.random.default_rng([take.idle_seed, 13])
    W, H = sensor_size
    hz = 100.0 if rng.random() < 0.5 else 120.0
    w, h = int(rng.uniform(0.25, 1.0) * W), int(rng.uniform(0.25, 1.0) * H)
    x0, y0 = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
    p_fire = rng.uniform(0.01, 0.15)
    half_us = 1e6 / hz / 2
    n_half = int(duration_us / half_us)
    k = rng.binomial(w * h, p_fire, n_half)
    idx = np.repeat(np.arange(n_half), k)
    pix = rng.integers(0, w * h, idx.shape[0])
    t = idx * half_us + rng.normal(0.0, 300.0, idx.shape[0])
    return ((x0 + pix % w).astype(np.int16), (y0 + pix // w).astype(np.int16), idx % 2 == 0, t)


def render_frames(
    label: int, user: User, take: Take, frames: Sequence[int], *, mirror: bool = False
) -> Array:
    """Reflectance images ``[len(frames), H, W]`` of the scene at 1 kHz frame indices (flat grey wall)."""
    frames_arr = np.asarray(frames, dtype=np.int64)
    t_s = np.arange(int(frames_arr.max()) + 1, dtype=np.float64) * (FRAME_US * 1e-6)
    seg, shade = scene_geometry(label, user, take, t_s, mirror=mirror)
    wall = np.full(SENSOR_SIZE[::-1], user.background)
    return np.asarray(_render(seg, shade, wall, frames_arr))


# --- datasets -------------------------------------------------------------------------------------------

GAP_US = 500_000  # pause between gestures of one session (in AEDAT files)
SESSION_START_US = 1_000_000


@dataclass(frozen=True)
class SessionJob:
    """One user's session under one lighting: all 11 gestures, written as 11 npy files (+ AEDAT)."""

    seed: int
    split: str
    user: int
    session: int
    lighting: str
    duration_s: float
    out: str
    aedat: bool
    layout: str = "tonic"  # "tonic" (.npy per recording) or "ibm" (the raw release: .aedat + CSV + split files only)
    with_none: bool = False  # also a 12th recording per session: a distractor scene, label NONE_LABEL
    sensor_size: tuple[int, int] = SENSOR_SIZE
    #: a session of one distractor scene only (label NONE_LABEL): its kind, or ANY_DISTRACTOR to draw it;
    #: "" for a normal session of every gesture
    none_only: str = ""

    @property
    def labels(self) -> range:
        """Labels this session records."""
        if self.none_only:
            return range(NONE_LABEL, NONE_LABEL + 1)
        return range(N_CLASSES + int(self.with_none))


def session_order(seed: int, user: int, session: int, n_labels: int = N_CLASSES) -> list[int]:
    """The order in which a session performs its gestures (random, so that time in the session says nothing)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, user, session, 0x0DE5]))
    return [int(v) for v in rng.permutation(n_labels)]


def session_lighting(seed: int, user: int, session: int, lighting: str) -> Lighting:
    """A session's sensor conditions: its lighting tag's, with the camera's bias settings varied per session.

    Thresholds x0.85-1.2 (event rates differ by about 2x between sessions) and background activity x0.5-2.5
    (0.1-2.3 Hz per pixel: a DVXplorer indoors shows about 1.2 Hz per pixel of isolated events).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, user, session, 0x11C7]))
    base = lighting_of(lighting)
    return replace(base, threshold=base.threshold * rng.uniform(0.85, 1.2), noise_hz=base.noise_hz * rng.uniform(0.5, 2.5))


def recording(
    seed: int, user: int, session: int, lighting: str, label: int, duration_s: float, *,
    sensor_size: tuple[int, int] = SENSOR_SIZE, with_none: bool = False, distractor: str | None = None,
) -> Recording:
    """One synthetic recording, fully determined by its arguments.

    Its times are those of its slot in the session (``SESSION_START_US`` + position x (duration + 0.5 s)),
    the slot ``[start_us, end_us)`` is in ``meta``. Label ``NONE_LABEL`` is a distractor scene of kind
    ``distractor`` (drawn from :data:`DISTRACTORS` when None). ``sensor_size`` changes the sensor, not the
    subject (same pixel size, same offset from the centre).
    """
    if not 0 <= label <= NONE_LABEL:
        msg = f"recording: label must be in 0..{NONE_LABEL} (11 gestures + {NONE_LABEL} 'none'), found {label}"
        raise ValueError(msg)
    if distractor is not None and distractor not in DISTRACTORS:
        msg = f"recording: unknown distractor {distractor!r}; known: {', '.join(DISTRACTORS)}"
        raise ValueError(msg)
    rng = np.random.default_rng(np.random.SeedSequence([seed, user, session, label]))
    take = make_take(rng)
    if label == NONE_LABEL:
        kinds = list(DISTRACTORS)
        drawn = kinds[int(rng.choice(len(kinds), p=np.array(list(DISTRACTORS.values()))))]
        take = replace(take, distractor=distractor or drawn, sway_px=take.sway_px * 2.0)
    u = make_user(seed, user, sensor_size)
    duration_us = round(duration_s * 1e6 / FRAME_US) * FRAME_US
    n_labels = N_CLASSES + int(with_none or label == NONE_LABEL)
    t0 = SESSION_START_US + session_order(seed, user, session, n_labels).index(label) * (duration_us + GAP_US)
    mirror = u.handed < 0 and label in SELF_MIRRORED
    events = simulate(
        label, u, session_lighting(seed, user, session, lighting), make_camera(seed, sensor_size), take, rng,
        duration_s=duration_s, t0_us=t0, mirror=mirror,
    )  # fmt: skip
    meta = {
        "user": user,
        "lighting": lighting,
        "session": session,
        "seed": seed,
        "synthetic": True,
        "start_us": t0,
        "end_us": t0 + duration_us,
    }
    if label == NONE_LABEL:
        meta["distractor"] = take.distractor
    return Recording(events, sensor_size, label=label, name=f"user{user:02d}_{lighting}/{label}", meta=meta)


def run_session(job: SessionJob) -> tuple[int, float]:
    """Generate and write one session; returns (events written, seconds spent)."""
    from .datasets import tonic_layout

    start = time.perf_counter()
    recs = [
        recording(job.seed, job.user, job.session, job.lighting, lab, job.duration_s, sensor_size=job.sensor_size,
                  with_none=job.with_none,  # a none-only session's one label is NONE_LABEL: recording() counts it
                  distractor=None if job.none_only in ("", ANY_DISTRACTOR) else job.none_only)
        for lab in job.labels
    ]  # fmt: skip
    if job.layout == "tonic":
        for rec in recs:
            tonic_layout.write_sample(job.out, job.split, job.user, job.lighting, int(rec.label or 0), rec.events)
    if job.aedat or job.layout == "ibm":
        from .datasets import aedat3, ibm

        slots = sorted((int(r.meta["start_us"]), int(r.meta["end_us"]), int(r.label or 0)) for r in recs)
        segments = [(label, start, end) for start, end, label in slots]
        # the raw release keeps every session of both splits in one folder (the split files say which is which)
        folder = Path(job.out) / ibm.RELEASE_FOLDER if job.layout == "ibm" else Path(job.out) / "aedat" / job.split
        name = tonic_layout.session_name(job.user, job.lighting)
        events = np.concatenate([r.events for r in recs])
        aedat3.write_session(folder / f"{name}.aedat", folder / f"{name}_labels.csv", events, segments)
    return sum(len(r) for r in recs), time.perf_counter() - start


def plan_jobs(
    out: str | Path,
    train_users: int,
    test_users: int,
    seed: int,
    duration_s: float,
    repeats: int,
    aedat: bool,
    layout: str = "tonic",
    with_none: bool = False,
    sensor_size: tuple[int, int] = SENSOR_SIZE,
    extra_none: tuple[str, ...] = (),
) -> list[SessionJob]:
    """Sessions of a dataset: train users 1..N, test users N+1..N+M, ``repeats`` lightings each.

    ``extra_none``: one more session per *training* user and entry, under a further lighting, holding only a
    distractor scene of that kind (:data:`DISTRACTORS`, or :data:`ANY_DISTRACTOR` to draw one). The
    background class gets more scenes without changing any other recording; test users keep one scene a
    session, so validation figures stay comparable.
    """
    check_extra_none(extra_none)
    jobs = []
    for user in range(1, train_users + test_users + 1):
        split = "train" if user <= train_users else "test"
        extra = extra_none if split == "train" else ()
        lightings = session_lightings(user, repeats + len(extra))
        for session, lighting in enumerate(lightings):
            kind = extra[session - repeats] if session >= repeats else ""
            jobs.append(SessionJob(seed, split, user, session, lighting, duration_s, str(out), aedat, layout,
                                   with_none, tuple(sensor_size), kind))  # type: ignore[arg-type]  # fmt: skip
    return jobs


def check_extra_none(extra_none: tuple[str, ...]) -> None:
    """Refuse an ``extra_none`` entry that names no distractor kind."""
    known = (*DISTRACTORS, ANY_DISTRACTOR)
    for kind in extra_none:
        if kind not in known:
            msg = f"extra none scenes: unknown distractor kind {kind!r}; expected one of {', '.join(known)}"
            raise ValueError(msg)


def generate(
    out: str | Path,
    train_users: int,
    test_users: int,
    seed: int,
    *,
    duration_s: float = 6.0,
    repeats: int = 2,
    aedat: bool = False,
    workers: int = 2,
    progress: bool = True,
    layout: str = "tonic",
    with_none: bool = False,
    sensor_size: tuple[int, int] = SENSOR_SIZE,
    extra_none: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Write a synthetic dataset under ``out`` in tonic's layout (or the IBM raw release's); returns a summary."""
    from tqdm import tqdm

    from .datasets import ibm, tonic_layout

    if layout not in ("tonic", "ibm"):
        msg = f"layout: expected 'tonic' or 'ibm', found {layout!r}"
        raise ValueError(msg)
    jobs = plan_jobs(out, train_users, test_users, seed, duration_s, repeats, aedat, layout, with_none, sensor_size,
                     extra_none)  # fmt: skip
    if layout == "tonic":
        tonic_layout.write_markers(out)
    else:
        names = {split: [f"{tonic_layout.session_name(j.user, j.lighting)}.aedat" for j in jobs if j.split == split]
                 for split in ("train", "test")}  # fmt: skip
        ibm.write_release(Path(out) / ibm.RELEASE_FOLDER, names)
    start = time.perf_counter()
    total_events, busy_s = 0, 0.0
    bar = tqdm(total=sum(len(j.labels) for j in jobs), unit="rec", disable=not progress, desc="synth")
    if workers <= 1:
        for job in jobs:
            n, s = run_session(job)
            total_events, busy_s = total_events + n, busy_s + s
            bar.update(len(job.labels))
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        # fork: workers inherit the compiled kernels and need no `if __name__ == "__main__"` guard in
        # callers' scripts; they only run numpy/numba code, so forking is safe.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
            futures = {pool.submit(run_session, job): len(job.labels) for job in jobs}
            for fut in cf.as_completed(futures):
                n, s = fut.result()
                total_events, busy_s = total_events + n, busy_s + s
                bar.update(futures[fut])
    bar.close()
    n_rec = sum(len(j.labels) for j in jobs)
    if layout == "ibm":
        n_train = sum(len(j.labels) for j in jobs if j.split == "train")
        return {"recordings": n_rec, "events": total_events, "wall_s": time.perf_counter() - start,
                "seconds_per_recording_one_core": busy_s / max(n_rec, 1), "layout": "ibm",
                "train_files": n_train, "test_files": n_rec - n_train}  # fmt: skip
    return {
        "recordings": n_rec,
        "events": total_events,
        "wall_s": time.perf_counter() - start,
        "seconds_per_recording_one_core": busy_s / max(n_rec, 1),
        "train_files": tonic_layout.count_samples(out, "train") if train_users else 0,
        "test_files": tonic_layout.count_samples(out, "test") if test_users else 0,
    }


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture synth``: generate a synthetic DVS gesture dataset in tonic's layout."""
    from .datasets import tonic_layout

    parser = argparse.ArgumentParser(
        prog="s2gesture synth",
        description="Generate synthetic DVS128 gesture recordings (11 classes) in tonic's DVSGesture layout: "
        "OUT/DVSGesture/ibmGestureTrain|ibmGestureTest/userNN_<lighting>/<label>.npy, loadable with "
        "tonic.datasets.DVSGesture(save_to=OUT). Test users never appear in training.",
    )
    parser.add_argument("--out", required=True, help="dataset root (tonic's save_to)")
    parser.add_argument("--train-users", type=int, required=True, help="number of training users (ids 1..N)")
    parser.add_argument("--test-users", type=int, required=True, help="number of test users (ids N+1..N+M)")
    parser.add_argument("--seed", type=int, required=True, help="dataset seed: same seed, same files")
    parser.add_argument("--duration-s", type=float, default=6.0, help="seconds per recording (default 6.0)")
    parser.add_argument("--repeats", type=int, default=2, help="lighting sessions per user (default 2)")
    parser.add_argument(
        "--aedat",
        action="store_true",
        help="also write OUT/aedat/<split>/userNN_<lighting>.aedat + _labels.csv",
    )
    parser.add_argument(
        "--layout",
        choices=("tonic", "ibm"),
        default="tonic",
        help="tonic (default): OUT/DVSGesture/... .npy files; ibm: the IBM raw release, OUT/DvsGesture/"
        "userNN_<lighting>.aedat + _labels.csv + trials_to_train.txt / trials_to_test.txt",
    )
    parser.add_argument("--with-none", action="store_true",
                        help=f"also record a distractor scene per session, label {NONE_LABEL} 'none' "
                        f"({', '.join(DISTRACTORS)}): the background class of the bundled model")  # fmt: skip
    parser.add_argument("--extra-none", default="", metavar="KIND[,KIND...]",
                        help="per training user, one more session per KIND holding only a distractor scene "
                        f"of that kind ({', '.join(DISTRACTORS)}, or {ANY_DISTRACTOR} to draw one), e.g. "
                        "idle,any: more background scenes for the 'none' class (implies --with-none)")  # fmt: skip
    parser.add_argument("--sensor-size", default="128x128", metavar="WxH",
                        help="sensor size (default 128x128); subjects keep their pixel size, so a bigger "
                        "sensor shows more wall around the same person")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for name in ("train_users", "test_users", "repeats", "workers"):
        if getattr(args, name) < (1 if name in ("repeats", "workers") else 0):
            parser.error(
                f"--{name.replace('_', '-')} must be >= {1 if name in ('repeats', 'workers') else 0}"
            )
    if args.duration_s <= 0.0:
        parser.error("--duration-s must be > 0")
    extra_none = tuple(k.strip() for k in args.extra_none.split(",") if k.strip())
    try:
        check_extra_none(extra_none)
    except ValueError as exc:
        parser.error(f"--extra-none: {exc}")
    try:
        w, h = (int(v) for v in args.sensor_size.lower().split("x"))
        if w < 64 or h < 64:
            raise ValueError
    except ValueError:
        parser.error(f"--sensor-size: expected WIDTHxHEIGHT of at least 64x64 pixels, e.g. 346x260; found {args.sensor_size!r}")
    summary = generate(
        args.out, args.train_users, args.test_users, args.seed, duration_s=args.duration_s,
        repeats=args.repeats, aedat=args.aedat, workers=args.workers, progress=not args.quiet,
        layout=args.layout, with_none=args.with_none or bool(extra_none), sensor_size=(w, h), extra_none=extra_none,
    )  # fmt: skip
    print(
        f"wrote {summary['recordings']} recordings ({summary['events']} events) to {args.out} in "
        f"{summary['wall_s']:.1f} s ({summary['seconds_per_recording_one_core']:.2f} s per recording per core)"
    )
    for split in ("train", "test"):
        n = summary[f"{split}_files"]
        if args.layout == "tonic" and 0 < n < tonic_layout.TONIC_MIN_FILES:
            print(
                f"note: the {split} split has {n} files; tonic.datasets.DVSGesture only uses a folder with >= "
                f"{tonic_layout.TONIC_MIN_FILES} (it downloads otherwise): add users or --repeats",
                file=sys.stderr,
            )
    return 0


__all__ = [
    "DISTRACTORS",
    "LIGHTINGS",
    "MIRROR_LABEL",
    "MOTIONS",
    "NONE_LABEL",
    "Camera",
    "Lighting",
    "Take",
    "User",
    "generate",
    "make_camera",
    "make_take",
    "make_user",
    "recording",
    "render_frames",
    "scene_geometry",
    "simulate",
]
