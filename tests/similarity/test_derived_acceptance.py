"""Acceptance (issue 16), as a new user would find it: the agent runs as the installed service runs it (system
mode, root, no HOME, no config file). Ana, an ordinary user, has a public base model in her Hugging Face
cache and her team's private fine-tune of it in a project folder. Changed copies of the private model land
in her home: a Q4_K_M GGUF, a 50%-pruned fp16 copy, an ONNX export (external data, torch's default). Each
raises one model-copy alert naming the private model, how similar the copy is and which tensors matched.
A Q4_K_M copy of the public base and a colleague's fine-tune of the same base raise nothing.

The files are written beforehand by the real tools (tests/similarity/derived.py) and kept as base64 text,
which is no model file: staged as models, the service would protect them too (everything not public is
private), and each landing copy would be a byte copy of its staged file. Ana decodes them into her
Downloads with `base64 -d`: the agent judges content, whoever wrote it.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.test_installed_scope import InstalledAgent, Person, people  # noqa: F401 - the fixture
from tests.similarity import derived
from tests.similarity.recognition import PUBLIC_REPO, REVISION
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]

PRIVATE_HOME = "work/acme-assistant"
COPIES = {  # what lands in ~/Downloads -> whether it is a copy of the private model
    "assistant-Q4_K_M.gguf": True,
    "assistant-pruned.safetensors": True,
    "assistant-onnx": True,
    "base-Q4_K_M.gguf": False,
    "colleague-finetune.safetensors": False,
}


def give(person: Person, path: Path) -> None:
    """Make `path` (and its folders up to the home) belong to `person`, as if they had written it."""
    for item in [path, *path.parents]:
        if item == person.home:
            break
        os.chown(item, person.uid, person.gid)


@pytest.fixture(scope="module")
def staged() -> Iterator[Path]:
    """The changed copies, written by the real tools, as base64 text in a folder Ana can read."""
    place = Path(tempfile.mkdtemp(prefix="ww-derived-"))
    place.chmod(0o755)
    work = Path(tempfile.mkdtemp(prefix="ww-derived-work-"))
    private, base = derived.private_model(), derived.public_base()
    files = {
        "assistant-Q4_K_M.gguf": [derived.write_gguf(private, work / "q4", "Q4_K_M")],
        "assistant-pruned.safetensors": [derived.write_pruned(private, work / "pruned")],
        "base-Q4_K_M.gguf": [derived.write_gguf(base, work / "base-q4", "Q4_K_M")],
        "colleague-finetune.safetensors": [derived.write_safetensors(derived.sibling_model(), work / "sib", "fp16")],
    }
    if _has("onnxscript"):
        files["assistant-onnx"] = derived.write_onnx_default(private, work / "onnx")
    try:
        for name, paths in files.items():
            folder = place / name
            folder.mkdir(mode=0o755)
            for path in paths:  # one file, or the files of a folder model (ONNX and its external data)
                text = folder / ((path.name if len(paths) > 1 else name) + ".b64")
                text.write_bytes(base64.encodebytes(path.read_bytes()))
                text.chmod(0o644)
    finally:
        shutil.rmtree(work)
    try:
        yield place
    finally:
        shutil.rmtree(place)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def service(people: tuple[Person, Person],  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InstalledAgent, str]]:
    ana, _ = people
    base = derived.write_safetensors(derived.public_base(), tmp_path_factory.mktemp("download"), "bf16")
    cache = ana.home / ".cache" / "huggingface" / "hub"
    derived.hf_cache_entry(cache, PUBLIC_REPO, {"model.safetensors": base}, REVISION)
    private = derived.write_safetensors(derived.private_model(), ana.home / PRIVATE_HOME, "bf16")
    give(ana, private)
    for root, folders, names in os.walk(ana.home / ".cache"):
        for item in [root, *(os.path.join(root, n) for n in [*folders, *names])]:
            os.lchown(item, ana.uid, ana.gid)
    agent = InstalledAgent(tmp_path_factory.mktemp("service") / "data")
    try:
        def both_known() -> dict[str, Any] | None:
            models = agent.models()
            mine = [m for m in models if any(str(private) == p for p in m.get("paths", []))]
            public = [m for m in models if m.get("repo_id") == PUBLIC_REPO and not m.get("protected")]
            return mine[0] if mine and mine[0].get("protected") and public else None

        model = wait_for(both_known, timeout=180, what="the private model protected and the public base known")
        yield agent, model["name"]
    finally:
        assert agent.stop() == 0


def land(person: Person, staged: Path, name: str, as_name: str | None = None) -> Path:
    """Ana decodes a staged copy into ~/Downloads (a folder model into a folder); returns where."""
    target = person.home / "Downloads" / (as_name or name)
    texts = sorted((staged / name).iterdir())
    folder = target if len(texts) > 1 else target.parent
    person.run("mkdir", "-p", str(folder))
    for text in texts:
        out = folder / (text.name.removesuffix(".b64") if len(texts) > 1 else target.name)
        person.run("sh", "-c", 'base64 -d "$0" > "$1"', str(text), str(out))
    return target


def copy_alerts(agent: InstalledAgent, target: Path) -> list[dict[str, Any]]:
    return [a for a in agent.json_lines("alerts") if a["rule"] == "model-copy"
            and str(target) in ((a.get("destination") or {}).get("path") or "")]


@pytest.mark.parametrize("name", [n for n, is_copy in COPIES.items() if is_copy])
def test_a_changed_copy_of_the_private_model_raises_one_alert(service: tuple[InstalledAgent, str],
                                                              people: tuple[Person, Person],  # noqa: F811
                                                              staged: Path,
                                                              name: str) -> None:
    agent, private = service
    ana, _ = people
    if not (staged / name).exists():  # the ONNX export needs onnxscript
        pytest.skip(f"{name}: its writer is not installed here")
    target = land(ana, staged, name)
    (alert,) = wait_for(lambda: copy_alerts(agent, target), timeout=60, what=f"the model-copy alert for {name}")
    evidence = alert["evidence"]
    assert alert["model"] == private
    assert evidence["similarity"] >= 0.3 and evidence["matched_names"]
    assert evidence["public_base"] and evidence["delta_share"] >= 0.92
    assert "similarity" in alert["message"]
    assert (alert.get("process") or {}).get("user") == ana.name


def test_the_public_base_and_a_colleague_fine_tune_raise_nothing(service: tuple[InstalledAgent, str],
                                                                 people: tuple[Person, Person],  # noqa: F811
                                                                 staged: Path) -> None:
    agent, _ = service
    ana, _ = people
    targets = [land(ana, staged, name) for name, is_copy in COPIES.items() if not is_copy]

    def all_examined() -> bool:
        paths = {p for m in agent.models() for p in m.get("paths", [])}
        return all(str(t) in paths for t in targets)

    wait_for(all_examined, timeout=60, what="the base copy and the colleague's model in the inventory")
    # A positive control after them: once its alert is there, the files before it were matched too.
    control = land(ana, staged, "assistant-pruned.safetensors", "control.safetensors")
    wait_for(lambda: copy_alerts(agent, control), timeout=60, what="the control copy's alert")
    for target in targets:
        raised = copy_alerts(agent, target)
        assert raised == [], f"{target.name} raised {[(a['title'], a['message'], a['evidence']) for a in raised]}"
