"""Hostile model files cost a worker a bounded amount of memory (issue 15, item 5).

Each file of the corpus (agent/fingerprint/layouts/testing.py) is examined by the real entry point in a
fresh child process; its peak RSS may rise by at most the file's ceiling. Measured on the code before the
memory budget (every hostile file failed): GLOBALs +892 MiB, EMPTY_SETs +489 MiB, the memo jump +1,024 MiB,
dict copies +134 MiB, the 20 MB safetensors header +250 MiB (9 s), the 16 MiB one +155 MiB, 20,000 F8
tensors +102 MiB, a million GGUF tensor infos +623 MiB (32 s). The benign files and the calibration file
(sets-in-budget) pass on both: the budgets leave real models alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from weightwarden.agent.fingerprint.layouts.testing import CORPUS, HostileFile, measure, write_warm_up

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def warm_up(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("warm") / "warm.safetensors"
    write_warm_up(path)
    return path


@pytest.mark.parametrize("hostile", CORPUS, ids=[item.name for item in CORPUS])
def test_examining_a_file_stays_within_its_ceiling(hostile: HostileFile, tmp_path: Path, warm_up: Path) -> None:
    path = tmp_path / hostile.name
    hostile.write(path)
    cost = measure(path, warm_up)
    assert cost.growth <= hostile.ceiling, f"{hostile.attack}: +{cost.growth >> 20} MiB ({cost})"
    assert cost.format is not None, "a hostile model file is still reported as a model file"


@pytest.mark.parametrize(("name", "reason"), [
    ("huge-header.safetensors", "safetensors header too large"),
    ("many-infos.gguf", "GGUF header too large"),
])
def test_a_file_over_budget_is_reported_with_the_reason(name: str, reason: str, tmp_path: Path,
                                                        warm_up: Path) -> None:
    hostile = next(item for item in CORPUS if item.name == name)
    path = tmp_path / name
    hostile.write(path)
    cost = measure(path, warm_up)
    assert cost.over_budget is not None and cost.over_budget.startswith(reason), cost
