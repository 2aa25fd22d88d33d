"""The robot controller's config and policy: mapping, threshold, debouncing and safety stops (fake clock)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from s2gesture.clients import bus, robot
from s2gesture.daemon import wire


def _config(**policy: Any) -> robot.RobotConfig:
    data = tomllib.loads(robot.EXAMPLE_CONFIG.read_text())
    data["policy"].update(policy)
    return robot.parse_config(data)


def _gesture(label: str, confidence: float = 0.9, *, final: bool = False, stream: str = "cam0") -> wire.Gesture:
    body = {"v": 1, "stream": stream, "seq": 1, "label": label, "confidence": confidence, "final": final, "class_id": 0}
    return wire.Gesture.from_body(body)


def _status(state: str) -> wire.Status:
    return wire.Status.from_body({"v": 1, "state": state})


def _feed(policy: robot.RobotPolicy, msg: wire.Gesture, now: float) -> robot.Command | None:
    return policy.on_message(msg, now)


def test_example_config_parses_and_maps_real_labels() -> None:
    """The shipped example is valid and names only DVS Gesture labels the daemon publishes."""
    from s2gesture.daemon.card import GESTURE_CLASSES

    cfg = robot.load_config(robot.EXAMPLE_CONFIG)
    assert set(cfg.gestures) <= set(GESTURE_CLASSES)
    assert cfg.gestures["right arm clockwise"] == "turn_right"
    assert cfg.gestures["right hand wave"] == "stop"


def test_config_errors_are_all_reported_with_suggestions(tmp_path) -> None:
    """A typo'd key, an unknown command and a wrong type are reported together, with a near-miss hint."""
    path = tmp_path / "r.toml"
    path.write_text(
        'schema_version = 1\n[policy]\nmin_confidance = 0.5\ndebounce_s = "1"\n'
        '[gestures]\n"hand clapping" = "forwrd"\n[commands.stop]\nlinear_m_s = 0.0\n[commands.forward]\n'
    )
    with pytest.raises(bus.ClientError) as info:
        robot.load_config(path)
    text = str(info.value)
    assert "3 problem(s)" in text
    assert "did you mean 'min_confidence'" in text
    assert "debounce_s has type str, expected int or float" in text
    assert "unknown command 'forwrd' (did you mean 'forward'?)" in text


def test_starts_in_safety_and_follows_a_confident_mapped_gesture() -> None:
    """The robot starts with the safety command; a mapped gesture above the threshold becomes a command."""
    policy = robot.RobotPolicy(_config(), now_s=0.0)
    assert policy.safe and policy.current.name == "stop"
    cmd = _feed(policy, _gesture("right arm clockwise", 0.8), 1.0)
    assert cmd is not None and cmd.name == "turn_right" and cmd.reason == "gesture"
    assert cmd.body()["params"] == {"linear_m_s": 0.0, "angular_rad_s": -0.5}
    assert cmd.body()["gesture"] == "right arm clockwise"


def test_threshold_unmapped_labels_finals_and_streams_are_ignored() -> None:
    """Low confidence, labels without a mapping, finals (by default) and other streams give no command."""
    policy = robot.RobotPolicy(_config(min_confidence=0.6), now_s=0.0)
    assert _feed(policy, _gesture("right arm clockwise", 0.59), 1.0) is None
    assert _feed(policy, _gesture("air guitar", 0.99), 2.0) is None
    assert _feed(policy, _gesture("right arm clockwise", 0.99, final=True), 3.0) is None
    filtered = robot.RobotPolicy(robot.RobotConfig(**{**_config().__dict__, "streams": ("cam1",)}), now_s=0.0)
    assert _feed(filtered, _gesture("right arm clockwise"), 1.0) is None
    assert _feed(filtered, _gesture("right arm clockwise", stream="cam1"), 1.0) is not None


def test_debounce_holds_a_command_and_repeats_are_no_change() -> None:
    """Within debounce_s another gesture does not switch the command; the same command again is no change."""
    policy = robot.RobotPolicy(_config(debounce_s=1.0), now_s=0.0)
    assert _feed(policy, _gesture("right arm clockwise"), 10.0) is not None
    assert _feed(policy, _gesture("hand clapping"), 10.5) is None
    assert _feed(policy, _gesture("right arm clockwise"), 11.5) is None
    cmd = _feed(policy, _gesture("hand clapping"), 11.6)
    assert cmd is not None and cmd.name == "forward"


def test_silence_past_the_heartbeat_timeout_stops_once() -> None:
    """After heartbeat_timeout_s without any daemon message the safety command is issued, exactly once."""
    policy = robot.RobotPolicy(_config(heartbeat_timeout_s=3.0), now_s=0.0)
    policy.on_message(_status("ready"), 1.0)
    _feed(policy, _gesture("hand clapping"), 1.5)
    assert policy.on_tick(4.4) is None
    cmd = policy.on_tick(4.6)
    assert cmd is not None and cmd.reason == "safety" and cmd.name == "stop"
    assert "no message from the daemon" in cmd.detail
    assert policy.on_tick(10.0) is None
    # the daemon is back and a gesture is recognised: the robot leaves the safety state at once
    policy.on_message(_status("ready"), 11.0)
    assert _feed(policy, _gesture("hand clapping"), 11.1) is not None


@pytest.mark.parametrize("state", ["stopping", "degraded"])
def test_stopping_or_degraded_daemon_stops_at_once(state: str) -> None:
    """A status saying the daemon stops or degrades triggers the safety command without waiting."""
    policy = robot.RobotPolicy(_config(), now_s=0.0)
    _feed(policy, _gesture("hand clapping"), 1.0)
    cmd = policy.on_message(_status(state), 1.2)
    assert cmd is not None and cmd.reason == "safety" and state in cmd.detail


def test_safety_stop_is_not_debounced() -> None:
    """A safety stop right after a gesture command is issued immediately (debounce only holds gestures)."""
    policy = robot.RobotPolicy(_config(debounce_s=5.0), now_s=0.0)
    _feed(policy, _gesture("hand clapping"), 1.0)
    assert policy.on_message(_status("stopping"), 1.01) is not None


def test_robot_check_prints_the_mapping(capsys: pytest.CaptureFixture[str]) -> None:
    """`s2gesture robot --check` validates the config and prints gesture -> command lines."""
    assert robot.cli(["--check"]) == 0
    out = capsys.readouterr().out
    assert "'right arm clockwise'" in out and "turn_right" in out
