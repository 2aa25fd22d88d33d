"""Daemon configuration: source priorities, every problem reported at once, exit 78, the shipped template."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from s2gesture.daemon.config import DaemonConfig, config_as_toml_keys, is_local_endpoint, load_config
from s2gesture.daemon.errors import ConfigError
from s2gesture.daemon.main import build_parser, overrides_from_args

TEMPLATE = Path(__file__).resolve().parents[1] / "systemd" / "s2gestured.toml"


def test_template_is_valid_and_equals_the_defaults() -> None:
    """The shipped example config validates and every value in it is the default."""
    shipped = load_config(TEMPLATE, environ={})
    defaults = load_config(None, environ={})
    assert config_as_toml_keys(shipped) == config_as_toml_keys(defaults)


def test_template_documents_every_key() -> None:
    """Every setting appears in the template (as a key or a commented key), so it is complete documentation."""
    text = TEMPLATE.read_text()
    data = tomllib.loads(text)
    for section, field in DaemonConfig.model_fields.items():
        if section == "schema_version":
            assert data["schema_version"] == 1
            continue
        assert f"[{section}]" in text
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            assert key in data.get(section, {}) or f"# {key} =" in text, f"{section}.{key} missing"


def test_priorities_cli_over_env_over_credentials_over_file(tmp_path: Path) -> None:
    """CLI overrides beat S2G_ env vars, which beat credentials files, which beat the TOML file."""
    import zmq

    file_key, cred_key = zmq.curve_keypair()[0].decode(), zmq.curve_keypair()[0].decode()
    cfg = tmp_path / "c.toml"
    cfg.write_text('schema_version = 1\n[input]\nmode = "lossless"\nrcvhwm = 7\nqueue_packets = 9\n'
                   f'[curve]\nserver_public_key = "{file_key}"\n[log]\nlevel = "debug"\n')
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "curve__server_public_key").write_text(cred_key + "\n")
    env = {"S2G_INPUT__RCVHWM": "11", "S2G_INPUT__MODE": "live", "CREDENTIALS_DIRECTORY": str(creds)}
    c = load_config(cfg, {"input": {"mode": "lossless"}}, environ=env)
    assert c.input.mode == "lossless"  # CLI over env
    assert c.input.rcvhwm == 11  # env over file
    assert c.input.queue_packets == 9  # file over default
    assert c.curve.server_public_key == cred_key  # credential over file
    assert c.log.level == "debug"


def test_all_problems_at_once_with_keys_env_and_near_misses(tmp_path: Path) -> None:
    """Every problem is one line naming the key and its env var; typos suggest the near-miss key."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text('schema_version = 1\n[input]\nmodee = "live"\nmode = "fast"\n[chunking]\nwindow_ticks = 10\n'
                   'stride_ticks = 20\n[decison]\nx = 1\n')
    with pytest.raises(ConfigError) as info:
        load_config(cfg, environ={"S2G_OUTPUT__STATUS_INTERVAL_S": "often"})
    text = str(info.value)
    assert "5 problem(s)" in text
    assert "input.modee: unknown key (did you mean 'mode'?)" in text
    assert "input.mode (env S2G_INPUT__MODE)" in text and "'fast'" in text
    assert "output.status_interval_s (env S2G_OUTPUT__STATUS_INTERVAL_S)" in text and "'often'" in text
    assert "chunking.stride_ticks (env S2G_CHUNKING__STRIDE_TICKS)" in text
    assert "decison: unknown key (did you mean 'decision'?)" in text


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("schema_version = 2\n", "reads schema_version 1"),
        ("[input]\nmode = 'live'\n", "missing schema_version"),
        ("schema_version = 1\n[input\n", "not valid TOML"),
        ("schema_version = 1\n[input]\nbind = ['tcp://0.0.0.0:5555']\n", "requires CURVE"),
        ("schema_version = 1\n[input]\nbind = ['udp://x']\n", "expected tcp://HOST:PORT"),
        ("schema_version = 1\n[input]\nbind = []\n", "no endpoint"),
        ("schema_version = 1\n[backend]\nname = 'emulater'\n", "did you mean 'emulator'"),
    ],
)
def test_refused_files(tmp_path: Path, toml: str, needle: str) -> None:
    """Unknown schema versions, bad TOML, open binds without CURVE and bad endpoints are refused."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=needle):
        load_config(cfg, environ={})


def test_missing_explicit_file_is_an_error_default_is_not(tmp_path: Path) -> None:
    """A --config file that does not exist is an error; the absent default file is fine."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
    assert load_config(None, environ={}).input.mode == "live"


def test_env_json_parse_errors_are_config_errors() -> None:
    """A malformed JSON list in an env var is reported as a config error, not a crash."""
    with pytest.raises(ConfigError, match="environment"):
        load_config(None, environ={"S2G_INPUT__BIND": "[not json"})


def test_cli_flags_and_set() -> None:
    """Flags and --set SECTION.KEY=VALUE build the CLI layer with TOML-typed values."""
    args = build_parser().parse_args(
        ["--mode", "lossless", "--input-bind", "ipc:///tmp/a", "--set", "chunking.stride_ticks=50",
         "--set", "backend.options={threshold_op = '>='}", "--metrics-port", "9200"]
    )
    over = overrides_from_args(args)
    assert over["input"] == {"mode": "lossless", "bind": ["ipc:///tmp/a"]}
    assert over["chunking"] == {"stride_ticks": 50}
    assert over["backend"] == {"options": {"threshold_op": ">="}}
    assert over["metrics"] == {"port": 9200, "enabled": True}
    assert load_config(None, over, environ={}).chunking.stride_ticks == 50


def test_loopback_detection() -> None:
    """Loopback and ipc endpoints are local; wildcard and public addresses are not."""
    assert is_local_endpoint("tcp://127.0.0.1:1") and is_local_endpoint("tcp://[::1]:1")
    assert is_local_endpoint("ipc:///run/x") and is_local_endpoint("tcp://localhost:5")
    assert not is_local_endpoint("tcp://*:5555") and not is_local_endpoint("tcp://10.0.0.2:5555")


def test_check_config_exit_codes(tmp_path: Path) -> None:
    """`s2gestured check-config` exits 78 listing every problem, and 0 on a good config and model."""
    from s2gesture.daemon.testing import write_tiny_model

    write_tiny_model(tmp_path / "m.nir")
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = 1\n[input]\nmod = 'live'\n[log]\nlevel = 'loud'\n")
    run = [sys.executable, "-m", "s2gesture.daemon.main", "check-config"]
    out = subprocess.run([*run, "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 78
    assert "input.mod: unknown key (did you mean 'mode'?)" in out.stderr and "log.level (env S2G_LOG__LEVEL)" in out.stderr
    ok = subprocess.run([*run, "--model", str(tmp_path / "m.nir")], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "configuration OK" in ok.stdout and "tiny-test" in ok.stdout
    missing = subprocess.run([*run, "--model", str(tmp_path / "x.nir")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 78 and "x.nir does not exist" in missing.stderr


def test_missing_model_at_start_exits_78(tmp_path: Path) -> None:
    """Starting the daemon on a model file that does not exist exits 78 (no restart loop) and names the file."""
    out = subprocess.run(
        [sys.executable, "-m", "s2gesture.daemon.main", "--model", str(tmp_path / "gone.nir"),
         "--input-bind", f"ipc://{tmp_path}/i", "--output-bind", f"ipc://{tmp_path}/o", "--log-format", "json"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 78 and "gone.nir does not exist" in out.stdout


def test_default_decision_config_is_the_default_policy() -> None:
    """A default-configured daemon decides like a default DecisionPolicy() (what offline evaluation builds)."""
    from s2gesture.daemon.decision import DecisionParams

    assert load_config(None, environ={}).decision.params() == DecisionParams()


def test_config_errors_never_echo_the_curve_secret() -> None:
    """An open bind without a client allow-list is refused without printing the secret key that was given."""
    import zmq

    _, secret = zmq.curve_keypair()
    env = {"S2G_CURVE__SERVER_SECRET_KEY": secret.decode()}
    with pytest.raises(ConfigError) as info:
        load_config(None, {"input": {"bind": ["tcp://0.0.0.0:5599"]}}, environ=env)
    assert "requires CURVE" in str(info.value)
    assert secret.decode() not in str(info.value)


def test_malformed_curve_keys_are_config_errors() -> None:
    """CURVE keys that are not 40-character Z85 keys are named in the config error, not found at bind time."""
    with pytest.raises(ConfigError) as info:
        load_config(None, {"curve": {"server_secret_key": "short", "client_public_keys": ["nope"]}}, environ={})
    text = str(info.value)
    assert "curve.server_secret_key" in text and "curve.client_public_keys" in text and "short" not in text


def test_wildcard_connect_endpoints_are_refused() -> None:
    """'*' works in a bind endpoint but is a config error in a connect endpoint."""
    load_config(None, {"input": {"bind": ["tcp://127.0.0.1:*"]}}, environ={})
    with pytest.raises(ConfigError, match=r"input\.connect.*concrete host and port"):
        load_config(None, {"input": {"connect": ["tcp://127.0.0.1:*"]}}, environ={})


def test_bad_flags_exit_78() -> None:
    """An unknown or malformed command-line flag is a configuration error (exit 78), not argparse's 2."""
    out = subprocess.run(
        [sys.executable, "-m", "s2gesture.daemon.main", "--status-interval", "abc"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 78 and "--status-interval" in out.stderr


def test_a_busy_metrics_port_exits_69_with_the_port_named(tmp_path: Path) -> None:
    """A metrics port already taken stops start-up with EX_UNAVAILABLE (69) and names the port, no traceback."""
    import socket

    from s2gesture.daemon.testing import write_tiny_model

    write_tiny_model(tmp_path / "m.nir")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "s2gesture.daemon.main", "--model", str(tmp_path / "m.nir"), "--metrics-port", str(port),
             "--input-bind", f"ipc://{tmp_path}/i", "--output-bind", f"ipc://{tmp_path}/o", "--log-format", "json"],
            capture_output=True, text=True, timeout=60,
        )
    assert out.returncode == 69, out.stdout + out.stderr
    assert f"127.0.0.1:{port}" in out.stdout and "Traceback" not in out.stderr
