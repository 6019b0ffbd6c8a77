"""The systemd unit: systemd's own checker accepts it, its hardening holds, and it runs what we install."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.installer.conftest import INSTALLER, require

UNIT = INSTALLER / "linux" / "weightwarden.service"


def unit_settings() -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return {f"{section}.{key}": value for section in parser.sections() for key, value in parser[section].items()}


def unit_with_executable(tmp_path: Path) -> Path:
    """The unit as shipped, but ExecStart pointing at an executable that exists here (nothing is installed
    under /opt on a test machine); systemd-analyze verify checks that the command is executable."""
    exe = tmp_path / "opt" / "weightwarden" / "venv" / "bin" / "weightwarden"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    unit = tmp_path / "units" / "weightwarden.service"
    unit.parent.mkdir()
    unit.write_text(UNIT.read_text().replace("ExecStart=/opt/weightwarden/venv/bin/weightwarden",
                                             f"ExecStart={exe}"))
    return unit


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    # SYSTEMD_OFFLINE: never talk to a running manager, even where there is one.
    env = {**os.environ, "SYSTEMD_OFFLINE": "1", "SYSTEMD_LOG_LEVEL": "notice"}
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, env=env, timeout=60)


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    require("systemd-analyze")
    result = analyze("verify", "--man=no", str(unit_with_executable(tmp_path)))
    if result.returncode != 0 and "Failed to " in result.stderr and "weightwarden" not in result.stderr:
        pytest.skip(f"systemd-analyze cannot run in this environment: {result.stderr.strip()[:300]}")
    problems = [line for line in result.stderr.splitlines() if "weightwarden" in line]
    assert result.returncode == 0, result.stderr
    assert problems == []


def test_exposure_stays_low(tmp_path: Path) -> None:
    """systemd's own scoring of the sandbox (0 = locked down, 10 = none); ours is about 3.8 with root,
    capabilities for the sensors, and /tmp left visible on purpose."""
    require("systemd-analyze")
    result = analyze("security", "--offline=true", "--no-pager", str(unit_with_executable(tmp_path)))
    match = re.search(r"Overall exposure level for weightwarden\.service: (\d+\.\d+)", result.stdout)
    if match is None:
        pytest.skip(f"systemd-analyze security --offline unsupported here: {result.stderr.strip()[:300]}")
    assert float(match.group(1)) <= 4.5, result.stdout


def test_hardening_and_watchdog_settings() -> None:
    unit = unit_settings()
    expected = {
        "Service.Type": "notify", "Service.NotifyAccess": "main", "Service.WatchdogSec": "60",
        "Service.Restart": "on-failure", "Service.User": "root", "Service.Group": "weightwarden-admin",
        "Service.NoNewPrivileges": "yes", "Service.ProtectSystem": "strict", "Service.ProtectHome": "read-only",
        "Service.StateDirectory": "weightwarden", "Service.StateDirectoryMode": "0750",
        "Service.ConfigurationDirectory": "weightwarden", "Service.StandardOutput": "journal",
        "Install.WantedBy": "multi-user.target",
    }
    assert {key: unit.get(key) for key in expected} == expected
    capabilities = set(unit["Service.CapabilityBoundingSet"].split())
    assert {"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"} <= capabilities
    assert "AF_NETLINK" in unit["Service.RestrictAddressFamilies"]  # proc connector and sock_diag
    assert {"fanotify_init", "fanotify_mark"} <= set(unit["Service.SystemCallFilter"].split())


def test_tmp_stays_visible_because_copies_are_staged_there() -> None:
    # PrivateTmp would give the agent an empty /tmp of its own while it is meant to watch the real one.
    unit = unit_settings()
    assert unit.get("Service.PrivateTmp", "no") == "no"
    assert unit.get("Service.PrivateDevices", "no") == "no"  # /dev/shm is watched too
    assert "PrivateTmp=" in UNIT.read_text()  # the reason is written down in the unit


def test_the_unit_runs_the_agent_in_system_mode_from_the_installed_venv() -> None:
    # No --config: a config named explicitly must exist, and the service must start without one.
    command = unit_settings()["Service.ExecStart"].split()
    assert command == ["/opt/weightwarden/venv/bin/weightwarden", "agent", "--mode", "system"]


def _bytes(value: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


def test_memory_is_capped_above_what_the_workers_can_need() -> None:
    """MemoryMax is set, and the per-file parse ceilings (the hostile corpus, measured by
    tests/adversarial/test_parser_memory.py) times the default workers, plus the agent's own ~256 MiB,
    fit under MemoryHigh: the agent stays up at its limit instead of being killed by it."""
    from weightwarden.agent.config.schema import ScanSection
    from weightwarden.agent.fingerprint.layouts.testing import CORPUS

    unit = unit_settings()
    memory_max, memory_high = _bytes(unit["Service.MemoryMax"]), _bytes(unit["Service.MemoryHigh"])
    assert memory_high < memory_max
    worst_file = max(item.ceiling for item in CORPUS)
    assert ScanSection().workers * worst_file + (256 << 20) <= memory_high


def test_only_network_namespaces_may_be_entered() -> None:
    # The network sensor joins containers' network namespaces (setns with CLONE_NEWNET); "yes" forbade it.
    assert unit_settings()["Service.RestrictNamespaces"].split() == ["net"]


def test_systemd_reads_the_namespace_restriction_as_net_only(tmp_path: Path) -> None:
    require("systemd-analyze")
    result = analyze("security", "--offline=true", "--no-pager", str(unit_with_executable(tmp_path)))
    rows = {match.group(2): match.group(1) for match in
            re.finditer(r"^(✓|✗) RestrictNamespaces=~(\w+)", result.stdout, re.MULTILINE)}
    if not rows:
        pytest.skip(f"systemd-analyze security --offline unsupported here: {result.stderr.strip()[:300]}")
    assert rows.pop("net") == "✗"
    assert set(rows) >= {"user", "pid", "uts", "mnt", "cgroup", "ipc"}
    assert set(rows.values()) == {"✓"}


# --------------------------------------------------------------------------- the weekly audit (issue 17)

AUDIT_SERVICE = INSTALLER / "linux" / "weightwarden-audit.service"
AUDIT_TIMER = INSTALLER / "linux" / "weightwarden-audit.timer"


def settings_of(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return {f"{section}.{key}": value for section in parser.sections() for key, value in parser[section].items()}


def test_the_audit_timer_runs_weekly_and_catches_up_missed_weeks() -> None:
    timer = settings_of(AUDIT_TIMER)
    assert (timer["Timer.OnCalendar"], timer["Timer.Persistent"]) == ("weekly", "true")
    assert timer["Install.WantedBy"] == "timers.target"


def test_the_audit_service_records_a_summary_and_findings_do_not_fail_it() -> None:
    from weightwarden.agent.cli.main import build_parser

    service = settings_of(AUDIT_SERVICE)
    command = service["Service.ExecStart"].split()
    assert command[0] == "/opt/weightwarden/venv/bin/weightwarden"
    assert command[1:] == ["audit", "--json", "--record", "--mode", "system"]
    args = build_parser("audit").parse_args(command[1:])  # the installed command line is one the CLI takes
    assert (args.json, args.record, args.mode) == (True, True, "system")
    assert service["Service.Type"] == "oneshot"
    assert service["Service.SuccessExitStatus"] == "1"  # exit 1 = high-risk findings, recorded
    assert service["Service.Environment"] == "WEIGHTWARDEN_DATA_DIR=/var/lib/weightwarden"  # the agent's data
    assert service["Service.ProtectSystem"] == "strict" and service["Service.ReadWritePaths"] == "/var/lib/weightwarden"


def test_systemd_analyze_verify_accepts_the_audit_units(tmp_path: Path) -> None:
    require("systemd-analyze")
    exe = tmp_path / "opt" / "weightwarden" / "venv" / "bin" / "weightwarden"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    (units / AUDIT_SERVICE.name).write_text(AUDIT_SERVICE.read_text().replace(
        "ExecStart=/opt/weightwarden/venv/bin/weightwarden", f"ExecStart={exe}"))
    (units / AUDIT_TIMER.name).write_text(AUDIT_TIMER.read_text())
    result = analyze("verify", "--man=no", str(units / AUDIT_TIMER.name), str(units / AUDIT_SERVICE.name))
    if result.returncode != 0 and "Failed to " in result.stderr and "weightwarden" not in result.stderr:
        pytest.skip(f"systemd-analyze cannot run in this environment: {result.stderr.strip()[:300]}")
    problems = [line for line in result.stderr.splitlines() if "weightwarden" in line]
    assert result.returncode == 0, result.stderr
    assert problems == []
