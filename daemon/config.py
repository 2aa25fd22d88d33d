"""The daemon's configuration: one pydantic-settings model, resolved once when the pipeline is built.

Sources, highest first (OPERATIONS.md): CLI flags > environment (``S2G_`` prefix, ``__`` for nesting, e.g.
``S2G_INPUT__MODE=lossless``) > systemd credentials (``$CREDENTIALS_DIRECTORY``, CURVE secrets only, one
file per key named ``curve__<key>``) > TOML file (``--config``, default ``/etc/s2gesture/s2gestured.toml``)
> defaults. ``systemd/s2gestured.toml`` is the commented template of every key.

Every problem is reported at once, one line each naming the key, the environment variable that sets it,
what was expected and what was given; unknown keys get a near-miss suggestion. :func:`load_config` raises
:class:`ConfigError` with that text; ``main`` prints it and exits 78 (EX_CONFIG).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from .decision import DecisionParams
from .errors import ConfigError, PreprocessError

SCHEMA_VERSION = 1
DEFAULT_CONFIG_PATH = Path("/etc/s2gesture/s2gestured.toml")
ENV_PREFIX = "S2G_"
ENV_NESTED = "__"
EX_CONFIG = 78


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Endpoints(_Section):
    @field_validator("bind", "connect", check_fields=False)
    @classmethod
    def _endpoints_usable(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        for endpoint in value:
            why = check_endpoint(endpoint, bind=info.field_name == "bind")
            if why:
                msg = f"endpoint {endpoint!r}: {why}"
                raise ValueError(msg)
        return value


class InputConfig(_Endpoints):
    """Where event packets come from and how much of them the daemon may hold."""

    #: "live": SUB socket, a slow daemon drops the oldest data; "lossless": PULL socket, senders are slowed
    mode: Literal["live", "lossless"] = "live"
    bind: tuple[str, ...] = ("tcp://127.0.0.1:5555",)
    connect: tuple[str, ...] = ()
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_events_per_packet: int = Field(default=1_000_000, ge=1)
    #: largest sensor width/height accepted (per stream: denoise memory width x height x 8 bytes, the
    #: anti-flicker state about 7 bytes per pixel and listed frequency)
    max_sensor_side: int = Field(default=1280, ge=1, le=32767)
    #: ZeroMQ receive high-water mark (messages) of the input socket
    rcvhwm: int = Field(default=100, ge=1)
    #: live mode: a stream's queued packets older than this (event time behind its newest) are dropped
    max_lag_ms: float = Field(default=200.0, gt=0)
    #: packets queued per stream before the oldest is dropped (live) or intake pauses (lossless)
    queue_packets: int = Field(default=64, ge=1)
    #: events queued over all streams (about 13 bytes each) before the oldest are dropped / intake pauses
    max_queued_events: int = Field(default=4_000_000, ge=1)
    max_streams: int = Field(default=64, ge=1)
    #: a peer that has not finished the ZeroMQ handshake by then is disconnected (idle half-open TCP)
    handshake_timeout_s: float = Field(default=5.0, gt=0, le=300)
    #: lamp flicker (Hz, twice the mains frequency) whose events are dropped before preprocessing; [] = off
    #: (= flicker.DEFAULT_HZ, written out so that a config that leaves it alone does not load numba; a test
    #: holds them equal)
    anti_flicker_hz: tuple[int, ...] = (100, 120)

    @field_validator("anti_flicker_hz", mode="before")  # before pydantic reads true as 1 Hz
    @classmethod
    def _check_flicker(cls, value: Any) -> tuple[int, ...]:
        from .flicker import check_hz

        try:
            return check_hz(value, "anti_flicker_hz")
        except PreprocessError as exc:
            raise ValueError(str(exc)) from None


class OutputConfig(_Endpoints):
    """Where predictions, gestures and status go."""

    bind: tuple[str, ...] = ("tcp://127.0.0.1:5556",)
    connect: tuple[str, ...] = ()
    sndhwm: int = Field(default=10_000, ge=1)
    status_interval_s: float = Field(default=1.0, gt=0, le=3600)


class SensorMappingConfig(_Section):
    """How one camera's sensor is mapped to the model input (replaces the card's ``input.mapping``)."""

    #: a name in preprocess.MAPPINGS; "subject" keeps the subject's size (docs/cameras.md, "Sensor mapping")
    mapping: str = "subject"
    #: mapping "subject": the sensor box [x0, y0, width, height]; none: training's box size, centred
    crop_box: tuple[int, int, int, int] | None = None


class ModelConfig(_Section):
    """The model artifact served."""

    #: a .nir file with its card; empty: the bundled pretrained model (models/pretrained/psnn_int8.nir)
    path: str = ""
    #: a JSON card for graphs made by other tools (replaces the graph's own card)
    card: str = ""
    #: per camera, keyed by its sensor size "WIDTHxHEIGHT" (or "*" for any other): the mapping to the
    #: model input, e.g. {"346x260" = {mapping = "subject", crop_box = [109, 66, 128, 128]}} (`s2gesture
    #: calibrate` writes it)
    input_mapping: dict[str, SensorMappingConfig] = Field(default_factory=dict)

    @field_validator("input_mapping")
    @classmethod
    def _mappings_usable(cls, value: dict[str, SensorMappingConfig]) -> dict[str, SensorMappingConfig]:
        from .preprocess import MAPPINGS, crop_box_problem

        problems = []
        for key, entry in value.items():
            size = key.lower().split("x")
            sensor = (int(size[0]), int(size[1])) if len(size) == 2 and all(p.isdigit() for p in size) else None
            if key != "*" and (sensor is None or 0 in sensor):
                problems.append(f"key {key!r} is not a sensor size: use \"WIDTHxHEIGHT\" (e.g. \"346x260\") or \"*\"")
                continue
            if entry.mapping not in MAPPINGS:
                problems.append(f"[{key}] mapping {entry.mapping!r} is unknown; expected one of {list(MAPPINGS)}")
            if entry.crop_box is not None:
                if entry.mapping != "subject":
                    problems.append(f"[{key}] crop_box is only used by mapping \"subject\", not {entry.mapping!r}")
                elif sensor is None:
                    problems.append(f"[{key}] a crop_box belongs to one sensor size: key it \"WIDTHxHEIGHT\", not \"*\"")
                else:
                    why = crop_box_problem(list(entry.crop_box), sensor)
                    if why:
                        problems.append(f"[{key}] {why}")
        if problems:
            raise ValueError("; ".join(problems))
        return value


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity; os.cpu_count where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not every platform has sched_getaffinity
        return max(1, os.cpu_count() or 1)


class BackendConfig(_Section):
    """Which interpreter runs the graph."""

    name: str = "emulator"
    #: backend options (ChipOptions fields and the backend's own); they override the model card's
    options: dict[str, Any] = Field(default_factory=dict)
    #: when the backend fails to load or run, serve with the emulator instead (state stays "degraded")
    fallback_to_emulator: bool = False
    retry_initial_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    #: backend instances running windows of different streams at once (default: the cores this process
    #: may use); backends that drive one device (a board) always run one
    workers: int = Field(default_factory=lambda: default_workers(), ge=1, le=1024)

    @field_validator("name")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from .backends import BACKENDS

        if value not in BACKENDS:
            near = difflib.get_close_matches(value, BACKENDS, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            msg = f"unknown backend{hint}; expected one of {sorted(BACKENDS)}"
            raise ValueError(msg)
        return value


class ChunkingConfig(_Section):
    """How ticks are cut into backend runs (the window shrinks to the backend's max_ticks)."""

    # 200:100 measured as accurate as 300:100 and 400:200 (benchmarks/results/decision.md) at 2/3 of the run time
    window_ticks: int = Field(default=200, ge=1)
    stride_ticks: int = Field(default=100, ge=1)
    #: input spikes a window needs to be run at all (activity gate)
    min_activity: int = Field(default=20, ge=0)

    @field_validator("stride_ticks")
    @classmethod
    def _stride_fits(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("window_ticks")
        if window is not None and value > window:
            msg = f"must be <= window_ticks ({window}): a longer stride would skip input"
            raise ValueError(msg)
        return value


def _decision_fields() -> dict[str, Any]:
    """The decision section's keys: DecisionParams' own fields, types and defaults (one owner per fact)."""
    hints = typing.get_type_hints(DecisionParams)
    return {f.name: (hints[f.name], f.default) for f in dataclasses.fields(DecisionParams)}


class _DecisionSection(_Section):
    """The decision policy; its keys and defaults are DecisionParams' own, so offline code that builds a
    default DecisionPolicy() decides exactly as a default-configured daemon."""

    @model_validator(mode="after")
    def _valid_params(self) -> _DecisionSection:
        self.params()  # DecisionParams checks every range and names the key
        return self

    def params(self) -> DecisionParams:
        """These settings as the policy's parameters."""
        return DecisionParams(**self.model_dump())


if typing.TYPE_CHECKING:
    DecisionConfig = _DecisionSection
else:
    DecisionConfig = create_model("DecisionConfig", __base__=_DecisionSection, __module__=__name__, **_decision_fields())


class StreamsConfig(_Section):
    """Silent streams: flushed (final decision) and later forgotten."""

    #: a stream silent this long (wall time) is flushed: its held ticks classified, a final decision published
    flush_after_s: float = Field(default=2.0, gt=0)
    #: a stream silent this long is forgotten (counters included)
    evict_after_s: float = Field(default=300.0, gt=0)
    #: a packet may cover at most this much event time (its ticks are materialised at once)
    max_packet_span_s: float = Field(default=5.0, gt=0, le=600)
    #: a jump in event time longer than this ends the segment (final decision) instead of filling it with ticks
    max_gap_s: float = Field(default=5.0, gt=0, le=600)


class CurveConfig(_Section):
    """CURVE encryption and client allow-list; required for any non-loopback bind."""

    server_secret_key: SecretStr | None = None
    server_public_key: str = ""
    #: Z85 public keys of the clients allowed to connect
    client_public_keys: tuple[str, ...] = ()

    @field_validator("server_secret_key")
    @classmethod
    def _secret_is_z85(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _is_z85_key(value.get_secret_value()):
            msg = "expected a 40-character Z85 CURVE key (zmq.curve_keypair()), found something else"
            raise ValueError(msg)
        return value

    @field_validator("server_public_key")
    @classmethod
    def _public_is_z85(cls, value: str) -> str:
        if value and not _is_z85_key(value):
            msg = f"expected a 40-character Z85 CURVE key (zmq.curve_keypair()), found {len(value)} characters"
            raise ValueError(msg)
        return value

    @field_validator("client_public_keys")
    @classmethod
    def _clients_are_z85(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [i for i, key in enumerate(value) if not _is_z85_key(key)]
        if bad:
            msg = f"entries {bad} are not 40-character Z85 CURVE public keys (zmq.curve_keypair())"
            raise ValueError(msg)
        return value


def _is_z85_key(text: str) -> bool:
    """Whether ``text`` is a Z85-encoded 32-byte CURVE key."""
    from zmq.utils import z85

    if len(text) != 40:
        return False
    try:
        return len(z85.decode(text)) == 32
    except (ValueError, KeyError, TypeError):
        return False


class MetricsConfig(_Section):
    """Prometheus exporter (off by default; loopback only unless CURVE-free exposure is really wanted)."""

    enabled: bool = False
    address: str = "127.0.0.1"
    port: int = Field(default=9105, ge=1, le=65535)
    #: metrics have no authentication: a non-loopback address must be allowed explicitly
    allow_remote: bool = False

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> MetricsConfig:
        if self.enabled and not self.allow_remote and not is_local_endpoint(f"tcp://{self.address}:{self.port}"):
            msg = (
                f"metrics.address {self.address!r} is not a loopback address; metrics have no authentication, "
                "so set metrics.allow_remote = true to serve them there, or use 127.0.0.1"
            )
            raise ValueError(msg)
        return self


class LogConfig(_Section):
    """structlog output."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    #: "auto": console renderer on a terminal, JSON lines otherwise
    format: Literal["auto", "json", "console"] = "auto"
    #: seconds between repeated log lines of the same dropped-packet reason of a stream
    drop_log_interval_s: float = Field(default=10.0, gt=0)


class DaemonConfig(BaseSettings):
    """Every setting of s2gestured (see systemd/s2gestured.toml)."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED,
        case_sensitive=False,
    )

    schema_version: int = SCHEMA_VERSION
    # sections are frozen models: one default instance can be shared safely
    input: InputConfig = InputConfig()
    output: OutputConfig = OutputConfig()
    model: ModelConfig = ModelConfig()
    backend: BackendConfig = BackendConfig()
    chunking: ChunkingConfig = ChunkingConfig()
    decision: DecisionConfig = DecisionConfig()
    streams: StreamsConfig = StreamsConfig()
    curve: CurveConfig = CurveConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            msg = f"this s2gestured reads schema_version {SCHEMA_VERSION}; see systemd/s2gestured.toml"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _curve_for_open_binds(self) -> DaemonConfig:
        open_binds = [e for e in (*self.input.bind, *self.output.bind) if not is_local_endpoint(e)]
        has_keys = self.curve.server_secret_key is not None and bool(self.curve.client_public_keys)
        if open_binds and not has_keys:
            msg = (
                f"non-loopback bind {open_binds} requires CURVE: set curve.server_secret_key (as a credential) "
                "and curve.client_public_keys, or bind to 127.0.0.1 / ipc://"
            )
            raise ValueError(msg)
        return self


def is_local_endpoint(endpoint: str) -> bool:
    """Whether a ZeroMQ endpoint stays on this host (ipc://, inproc://, or tcp on a loopback address)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: not provably loopback


def check_endpoint(endpoint: str, *, bind: bool = True) -> str | None:
    """Why an endpoint string is unusable (as a bind, or as a connect), or None when it is fine."""
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://") :]
        if not path or len(path.encode()) > 107:
            return f"ipc path must be 1-107 bytes (AF_UNIX limit), found {len(path.encode())}"
        return None
    if endpoint.startswith("tcp://"):
        rest = endpoint[len("tcp://") :]
        host, sep, port = rest.rpartition(":")
        if not sep or not host or not (port == "*" or (port.isdigit() and 0 < int(port) < 65536)):
            return "expected tcp://HOST:PORT"
        if not bind and (port == "*" or host == "*"):
            return "a connect endpoint needs a concrete host and port ('*' only works for binds)"
        return None
    if endpoint.startswith("inproc://"):
        return None
    return "expected tcp://HOST:PORT or ipc:///PATH"


class _CredentialsSource(PydanticBaseSettingsSource):
    """systemd credentials: files ``curve__<key>`` in ``$CREDENTIALS_DIRECTORY`` set ``curve.<key>``."""

    def __init__(self, settings_cls: type[BaseSettings], directory: str | None) -> None:
        super().__init__(settings_cls)
        self.directory = Path(directory) if directory else None

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self.directory is None or not self.directory.is_dir():
            return {}
        curve: dict[str, Any] = {}
        for key in CurveConfig.model_fields:
            f = self.directory / f"curve__{key}"
            if f.is_file():
                text = f.read_text().strip()
                curve[key] = tuple(text.split()) if key == "client_public_keys" else text
        return {"curve": curve} if curve else {}


class _DictSource(PydanticBaseSettingsSource):
    """A fixed mapping (the parsed TOML file)."""

    def __init__(self, settings_cls: type[BaseSettings], data: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self.data = dict(data)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.data


def read_toml(path: Path, *, explicit: bool) -> dict[str, Any]:
    """The parsed TOML file; a missing default file is empty, a missing explicit one an error."""
    if not path.is_file():
        if explicit:
            msg = f"config file {path} does not exist (given with --config); copy systemd/s2gestured.toml there"
            raise ConfigError(msg)
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        msg = f"config file {path}: not valid TOML: {exc}"
        raise ConfigError(msg) from exc
    if "schema_version" not in data:
        msg = f"config file {path}: missing schema_version; put `schema_version = {SCHEMA_VERSION}` at its top"
        raise ConfigError(msg)
    return data


def _env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED.join(str(p).upper() for p in loc[:2])


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: Any = DaemonConfig
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))


def _describe(err: Mapping[str, Any]) -> str:
    loc = tuple(p for p in err["loc"] if not isinstance(p, int))
    key = ".".join(str(p) for p in loc) or "(top level)"
    given = err.get("input")
    # a whole section or the top level may carry secrets (CURVE keys): name its type, never its content
    if "secret" in key or (loc and loc[0] == "curve"):
        # a CURVE value in the wrong place or shape (a whole section given as a string) may still be a key
        given_text = f"a {type(given).__name__} (not shown: it may hold a key)"
    elif isinstance(given, Mapping):
        given_text = f"a table with keys {sorted(map(str, given))}"[:120]
    else:
        given_text = repr(given)[:80]
    if err["type"] == "extra_forbidden":
        near = difflib.get_close_matches(str(loc[-1]), _fields_at(loc[:-1]), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        known = ", ".join(_fields_at(loc[:-1]))
        return f"{key}: unknown key{hint}; known keys here: {known}"
    env = _env_name(loc) if loc else ""
    where = f" (env {env})" if env else ""
    reason = str(err["msg"]).removeprefix("Value error, ")
    return f"{key}{where}: {reason}; given {given_text}"


def load_config(
    config_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> DaemonConfig:
    """Resolve every source once; raises ConfigError listing every problem (one line each)."""
    explicit = config_path is not None
    path = Path(config_path) if config_path is not None else DEFAULT_CONFIG_PATH
    toml_data = read_toml(path, explicit=explicit)
    env = os.environ if environ is None else environ
    cred_dir = env.get("CREDENTIALS_DIRECTORY")

    class _Resolved(DaemonConfig):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                _CredentialsSource(settings_cls, cred_dir),
                _DictSource(settings_cls, toml_data),
            )

    saved = None
    if environ is not None:
        # pydantic-settings reads os.environ; swap it for the call so tests can pass an explicit env
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(environ)
    try:
        resolved = _Resolved(**dict(overrides or {}))
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        source = f" (file {path})" if toml_data else ""
        msg = f"invalid configuration{source}: {len(lines)} problem(s)\n  " + "\n  ".join(lines)
        raise ConfigError(msg) from None
    except SettingsError as exc:
        msg = f"invalid configuration: environment: {exc} (S2G_* values of lists and tables are JSON)"
        raise ConfigError(msg) from None
    finally:
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)
    if not resolved.input.bind and not resolved.input.connect:
        msg = "invalid configuration: 1 problem(s)\n  input: no endpoint; set input.bind or input.connect"
        raise ConfigError(msg)
    return resolved


def config_as_toml_keys(config: DaemonConfig) -> dict[str, Any]:
    """Flat ``section.key -> value`` view (for check-config output and tests)."""
    out: dict[str, Any] = {}
    for name, value in config.model_dump().items():
        if isinstance(value, dict) and name != "options":
            for k, v in value.items():
                out[f"{name}.{k}"] = v
        else:
            out[name] = value
    return out
