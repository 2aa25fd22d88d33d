"""The systemd units: `systemd-analyze verify` passes with their paths present, the design's directives are
there, and `systemd-analyze security --offline=true` rates their exposure at 2.0 or below."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "systemd"
INSTALLED_EXE = "/opt/s2gesture/bin/s2gestured"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
MAX_EXPOSURE = 2.0

pytestmark = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed (Debian/Ubuntu: apt install systemd); unit files not verified",
)


def _parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (a key may repeat, as SystemCallFilter= does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {line!r} before any [Section]"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _daemon_exe(tmp_path: Path) -> Path:
    """The s2gestured the tests run against: the venv's console script, else a stand-in in tmp_path."""
    exe = Path(sys.executable).parent / "s2gestured"
    if exe.is_file():
        return exe
    stand_in = tmp_path / "s2gestured"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    return stand_in


def _installable(unit: str, tmp_path: Path, name: str | None = None) -> Path:
    """A copy of ``unit`` whose binary path exists on this machine (the install prefix is the only change)."""
    text = (UNITS / unit).read_text()
    assert INSTALLED_EXE in text, f"{unit} should start {INSTALLED_EXE}"
    copy = tmp_path / (name or unit)
    copy.write_text(text.replace(INSTALLED_EXE, str(_daemon_exe(tmp_path))))
    return copy


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(path)], capture_output=True, text=True, timeout=60, cwd=path.parent
    )


def _exposure(path: Path) -> float:
    assert SYSTEMD_ANALYZE is not None
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout + proc.stderr)
    assert found, f"no exposure level in systemd-analyze security output:\n{proc.stdout}\n{proc.stderr}"
    return float(found.group(1))


@pytest.mark.parametrize(
    ("unit", "name"), [("s2gestured.service", None), ("s2gestured@.service", "s2gestured@board1.service")]
)
def test_units_verify_without_any_warning(unit: str, name: str | None, tmp_path: Path) -> None:
    """`systemd-analyze verify` exits 0 and says nothing about our unit (unknown keys are only warnings)."""
    copy = _installable(unit, tmp_path, name)
    proc = _verify(copy)
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if copy.name in line or str(copy) in line]
    assert proc.returncode == 0 and not ours, proc.stdout + proc.stderr


def test_verify_catches_a_typo_and_a_missing_binary(tmp_path: Path) -> None:
    """The check can fail: a misspelt directive is reported, and a missing ExecStart binary fails verify."""
    copy = _installable("s2gestured.service", tmp_path)
    copy.write_text(copy.read_text().replace("ProtectHome=yes", "ProtectHme=yes"))
    assert "Unknown key" in _verify(copy).stderr
    missing = tmp_path / "missing.service"
    missing.write_text((UNITS / "s2gestured.service").read_text().replace(INSTALLED_EXE, str(tmp_path / "nope")))
    assert _verify(missing).returncode != 0


@pytest.mark.parametrize("unit", ["s2gestured.service", "s2gestured@.service"])
def test_units_carry_the_operations_directives(unit: str) -> None:
    """Type=notify, restart policy, watchdog, check-config, reload, sandboxing as OPERATIONS.md asks; no JIT breakers."""
    svc = _parse_unit(UNITS / unit)["Service"]
    expected = {
        "Type": "notify",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "78",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }
    for key, value in expected.items():
        assert svc.get(key) == [value], f"{unit}: {key}={value} expected, found {svc.get(key)}"
    for key in ("WatchdogSec", "TimeoutStartSec", "RuntimeDirectory", "CacheDirectory"):
        assert key in svc, f"{unit}: {key}= missing"
    assert any("check-config" in v for v in svc["ExecStartPre"])
    assert any(v.startswith("NUMBA_CACHE_DIR=%C/") for v in svc["Environment"])
    # numba (and torch) JIT needs writable+executable memory; PrivateDevices is excluded by the design too
    for banned in ("MemoryDenyWriteExecute", "PrivateDevices"):
        assert banned not in svc, f"{unit}: {banned}= breaks the daemon (OPERATIONS.md)"


def test_template_unit_is_per_instance() -> None:
    """The template reads /etc/s2gesture/<instance>.toml and keeps runtime and cache directories apart."""
    svc = _parse_unit(UNITS / "s2gestured@.service")["Service"]
    assert all("/etc/s2gesture/%i.toml" in v for v in svc["ExecStart"] + svc["ExecStartPre"])
    assert svc["RuntimeDirectory"] == ["s2gesture/%i"]
    assert svc["CacheDirectory"] == ["s2gesture/%i"]


@pytest.mark.parametrize(
    ("unit", "name"), [("s2gestured.service", None), ("s2gestured@.service", "s2gestured@board1.service")]
)
def test_security_exposure_is_at_most_two(unit: str, name: str | None, tmp_path: Path) -> None:
    """`systemd-analyze security --offline=true` rates the unit's exposure at most 2.0 (of 10)."""
    exposure = _exposure(_installable(unit, tmp_path, name))
    print(f"{unit}: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE


def test_exposure_measure_can_fail(tmp_path: Path) -> None:
    """The measurement is real: the same unit without its sandboxing scores far above the target."""
    bare = tmp_path / "bare.service"
    bare.write_text(f"[Service]\nType=notify\nExecStart={_daemon_exe(tmp_path)}\n")
    assert _exposure(bare) > 5.0
