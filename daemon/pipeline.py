"""A resolved configuration with its model and loaded backend: everything the per-packet path reads.

:func:`check_model` is what ``s2gestured check-config`` and the start both run: load the model, create
the backend with its options, translate and map the graph, and check the input and output shapes against
the card. A problem there is a configuration problem (exit 78), never a reason to loop ``degraded``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends import get_backend, options_from_card
from .card import Model, read_model
from .chunking import ChunkPlan, fit_plan, run_window
from .config import DaemonConfig
from .decision import DecisionParams
from .errors import (
    BackendError,
    ChipMemoryError,
    ConfigError,
    ModelCardError,
    PreprocessError,
    UnsupportedGraphError,
)
from .preprocess import PreprocessSpec, warm_up
from .streams import SessionRules, make_segment_factory
from .wire import WireLimits

DEFAULT_MODEL = "pretrained/psnn_int8.nir"
NO_CLASS_LABEL = "none"
#: errors of the model or its options: the same on every try, so they are configuration errors
MODEL_ERRORS = (UnsupportedGraphError, ChipMemoryError, ModelCardError)


def default_model_path() -> Path:
    """The bundled pretrained model, found as package data of s2gesture.models without importing it."""
    spec = importlib.util.find_spec("s2gesture.models")
    if spec is None or not spec.submodule_search_locations:
        msg = "package s2gesture.models is not installed, so there is no bundled model; set model.path"
        raise ConfigError(msg)
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL


def load_model(config: DaemonConfig) -> Model:
    """Read the configured (or bundled) model and its card."""
    path = Path(config.model.path) if config.model.path else default_model_path()
    return read_model(path, card=config.model.card or None)


def check_model(config: DaemonConfig, model: Model, backend_name: str | None = None) -> Any:
    """Create and load the backend for ``model``; raises ConfigError for anything the config must fix.

    Unsupported nodes, a graph that does not fit the chip, unknown backend options and shapes that disagree
    with the card are configuration errors. Other failures (a board that does not answer) are returned to
    the caller as they are: they may pass on a retry.
    """
    name = backend_name or config.backend.name
    options = {**options_from_card(model.card), **config.backend.options}
    where = f"model {model.card.name} ({model.path}) on backend {name}"
    try:
        backend = get_backend(name, **options)
    except BackendError as exc:
        msg = f"{where}: {exc}; fix backend.options or the card's conversion"
        raise ConfigError(msg) from exc
    try:
        backend.load(model.graph)
    except MODEL_ERRORS as exc:
        backend.close()
        msg = f"{where}: {exc}"
        raise ConfigError(msg) from exc
    except BaseException:
        backend.close()
        raise
    problems = []
    if int(backend.n_outputs) != len(model.card.classes):
        problems.append(
            f"the graph has {backend.n_outputs} outputs but the card names {len(model.card.classes)} classes; "
            "fix the card's 'classes'"
        )
    card_in = model.card.input
    frame_shape = (int(card_in.channels), int(card_in.height), int(card_in.width))
    if tuple(backend.input_shape) != frame_shape:
        problems.append(
            f"the graph takes input {tuple(backend.input_shape)} but the card's input spec makes {frame_shape} "
            "(channels, height, width); fix the card's 'input'"
        )
    # each camera's mapping against this model's input (a crop box of the wrong aspect ratio), before serving
    for key in config.model.input_mapping:
        if key != "*":
            try:
                width, height = (int(v) for v in key.lower().split("x"))
                PreprocessSpec.from_card(card_in, (width, height), config.model.input_mapping)
            except PreprocessError as exc:
                problems.append(f"model.input_mapping[{key}]: {exc}")
    if problems:
        backend.close()
        msg = f"{where}: " + "; ".join(problems)
        raise ConfigError(msg)
    return backend


@dataclass
class Pipeline:
    """A resolved configuration with its model and loaded backend."""

    config: DaemonConfig
    model: Model
    backend: Any
    backend_name: str
    plan: ChunkPlan
    decision: DecisionParams
    labels: tuple[str, ...]
    model_identity: dict[str, Any]
    limits: WireLimits
    rules: SessionRules

    @classmethod
    def build(cls, config: DaemonConfig, model: Model, backend_name: str | None = None) -> Pipeline:
        """Create and load the backend for ``model``, warm it up, and fit the chunk plan to it."""
        name = backend_name or config.backend.name
        backend = check_model(config, model, name)
        try:
            plan = fit_plan(
                ChunkPlan(config.chunking.window_ticks, config.chunking.stride_ticks, config.chunking.min_activity),
                backend,
            )
            # one run and one preprocessed packet before READY: compiled kernels load now (a second or
            # more from numba's cache), not while the first live packets wait in the socket
            ticks = min(plan.window, 8)
            backend.run(np.zeros((ticks, *backend.input_shape), dtype=np.uint8), record=())
            # a busy window too: a backend may pick other kernels (dense, split runs) for dense input
            busy = np.random.default_rng(0).random((ticks, *backend.input_shape)) < 0.3
            run_window(busy.astype(np.uint8), backend)
            width, height = model.card.input.trained_sensor_size
            warm_up((int(width), int(height)))
        except BaseException:
            backend.close()
            raise
        decision = config.decision.params()
        return cls(
            config=config,
            model=model,
            backend=backend,
            backend_name=name,
            plan=plan,
            decision=decision,
            labels=tuple(model.card.classes),
            model_identity=model.identity,
            limits=WireLimits(
                max_message_bytes=config.input.max_message_bytes,
                max_events=config.input.max_events_per_packet,
                max_sensor_side=config.input.max_sensor_side,
            ),
            rules=SessionRules(
                plan=plan,
                decision=decision,
                max_span_us=int(config.streams.max_packet_span_s * 1e6),
                max_gap_us=int(config.streams.max_gap_s * 1e6),
            ),
        )

    def segment_factory(self) -> Any:
        """Fresh preprocessing, chunking and decision state for a stream segment of this model."""
        card_input, overrides = self.model.card.input, self.config.model.input_mapping
        return make_segment_factory(
            self.rules, lambda sensor: PreprocessSpec.from_card(card_input, sensor, overrides), self.plan
        )

    def label(self, class_id: int) -> str:
        """The card's label of a class (``none`` for -1: no evidence)."""
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else NO_CLASS_LABEL

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()
