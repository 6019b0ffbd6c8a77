"""A sealed file says what it holds (docs/sealing.md): the header carries the plaintext's format, model and
tensor prints (no tensor values), identification recognises the container and names the model, and hostile
headers are clear errors that change nothing. The escrow key given at enrolment is checked, stored and used.

Models are written by the safetensors and gguf libraries; the scanner and the CLI are the real ones.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.conftest import write_gguf, write_safetensors
from weightwarden.agent.cli.main import main
from weightwarden.agent.events import ModelFile
from weightwarden.agent.fingerprint import FingerprintCache
from weightwarden.agent.identify import Identifier
from weightwarden.agent.scanner import Scanner
from weightwarden.agent.seal.container import MAGIC, MAX_HEADER
from weightwarden.agent.seal.escrow import ESCROW_NAME, enrolled_escrow_key, parse_public_key
from weightwarden.agent.seal.identity import bare_sha256
from weightwarden.agent.seal.inplace import SealError, read_sealed_header, seal_file, unseal_file, verify_file
from weightwarden.agent.seal.keys import SealKeyError, key_id, machine_private_key, machine_public_key, public_pem


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("WEIGHTWARDEN_DATA_DIR", str(folder))
    return folder


def examine(path: Path) -> ModelFile:
    found = Scanner(Identifier(), FingerprintCache()).examine(str(path))
    assert isinstance(found, ModelFile), found
    return found


def seal(path: Path, data_dir: Path) -> None:
    assert main(["seal", str(path)]) == 0


@pytest.mark.parametrize("kind", ["safetensors", "gguf"])
def test_a_sealed_model_is_identified_as_the_model_it_holds(tmp_path: Path, data_dir: Path, kind: str) -> None:
    if kind == "safetensors":
        path = write_safetensors(tmp_path / "llama-7b" / "model.safetensors", rows=256)
    else:
        path = write_gguf(tmp_path / "gguf" / "tiny.gguf", name="tiny-llama")
    plain = examine(path)
    seal(path, data_dir)
    sealed = examine(path)
    assert (sealed.format, sealed.details["sealed_format"], sealed.model) == ("sealed", plain.format, plain.model)
    assert sealed.details["sealed"]["sha256"] == plain.sha256 and sealed.details["sealed"]["size"] == plain.size
    # the plaintext's prints, less what would be plaintext: tensor names and corner values
    assert plain.tensors
    assert [(t.fingerprint, t.elements, t.bytes, t.informative) for t in sealed.tensors] == \
        [(t.fingerprint, t.elements, t.bytes, t.informative) for t in plain.tensors]
    assert all(t.name == "" and t.block == b"" for t in sealed.tensors)
    raw = path.read_bytes()
    assert not any(t.block and t.block[:32] in raw for t in plain.tensors)
    assert not any(t.name.encode() in raw for t in plain.tensors)
    # a byte copy anywhere is the same model, same content
    copy = tmp_path / "elsewhere" / "x.bin"
    copy.parent.mkdir()
    copy.write_bytes(raw)
    again = examine(copy)
    assert (again.model, again.sha256, again.quick_fingerprint) == (sealed.model, sealed.sha256,
                                                                    sealed.quick_fingerprint)


def test_a_sealed_file_of_something_that_is_no_model_is_still_recognised(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "notes.bin"
    path.write_bytes(os.urandom(10_000))
    seal(path, data_dir)
    found = examine(path)
    assert found.format == "sealed" and found.details["sealed_format"] == "unknown" and found.tensors == ()


def test_a_header_without_identity_still_reads(tmp_path: Path, data_dir: Path) -> None:
    """Files sealed before the header said what they hold (no format, model or prints) stay readable."""
    path = tmp_path / "m.bin"
    path.write_bytes(b"x" * 5000)
    header = seal_file(str(path), [("machine", machine_public_key(data_dir))], describe=bare_sha256)
    assert (header.format, header.model, header.prints) == (None, None, ())
    assert unseal_file(str(path), machine_private_key(data_dir)).size == 5000
    assert path.read_bytes() == b"x" * 5000


def _rewrite_header(sealed: bytes, edit: Any) -> bytes:
    length = int.from_bytes(sealed[8:12], "big")
    document = json.loads(sealed[12:12 + length])
    text = edit(document) if callable(edit) else edit
    body = text if isinstance(text, bytes) else json.dumps(text).encode()
    return sealed[:8] + len(body).to_bytes(4, "big") + body + sealed[12 + length:]


HOSTILE: dict[str, tuple[Any, str]] = {
    "not JSON": (b"{not json", "malformed header"),
    "deep nesting": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "malformed header"),
    "prints not a list": (lambda d: {**d, "prints": "all of them"}, "bad sha256, name or prints"),
    "a print of the wrong shape": (lambda d: {**d, "prints": [["t1:x", -1, 3, True]]}, "bad print 0"),
    "a print with a huge fingerprint": (lambda d: {**d, "prints": [["f" * 10_000, 1, 1, True]]}, "bad print 0"),
    "model a number": (lambda d: {**d, "model": 7}, "bad model"),
    "format an empty string": (lambda d: {**d, "format": ""}, "bad format"),
    "size past 2^63": (lambda d: {**d, "size": 1 << 63}, "bad size"),
    "keys not a list": (lambda d: {**d, "keys": {"machine": 1}}, "keys is not a list"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_headers_are_clear_errors_and_change_nothing(tmp_path: Path, data_dir: Path, case: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write_safetensors(tmp_path / "m" / "model.safetensors", rows=64)
    seal(path, data_dir)
    edit, message = HOSTILE[case]
    damaged = _rewrite_header(path.read_bytes(), edit)
    path.write_bytes(damaged)
    private = machine_private_key(data_dir)
    for action in (verify_file, unseal_file, lambda p, _k: read_sealed_header(p)):
        with pytest.raises(SealError, match=message):
            action(str(path), private)
    assert main(["seal", "--verify", str(path)]) == 1
    assert message in capsys.readouterr().err
    # identification does not take it for a sealed file (nor for anything else), and reads a bounded amount
    assert Identifier().identify_path(str(path)) is None
    assert path.read_bytes() == damaged
    assert [n for n in os.listdir(path.parent) if n.startswith(".wwseal-")] == []


def test_a_header_claiming_more_than_the_cap_is_refused_before_it_is_read(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(MAGIC + (MAX_HEADER + 1).to_bytes(4, "big") + b"{" + b" " * 100)
    with pytest.raises(SealError, match=f"header claims {MAX_HEADER + 1} bytes"):
        read_sealed_header(str(path))
    assert Identifier().identify_path(str(path)) is None


def test_a_cut_or_padded_sealed_file_is_not_identified_as_sealed(tmp_path: Path, data_dir: Path) -> None:
    path = write_safetensors(tmp_path / "m" / "model.safetensors", rows=64)
    seal(path, data_dir)
    whole = path.read_bytes()
    for changed in (whole[:-1], whole + b"\0"):
        path.write_bytes(changed)
        assert Identifier().identify_path(str(path)) is None


# --- the escrow key from enrolment ----------------------------------------------------------------------------

def test_enrol_escrow_key_in_any_form_and_seal_uses_it(tmp_path: Path, data_dir: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    escrow = X25519PrivateKey.generate()
    raw = escrow.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    forms = {"pem": public_pem(escrow.public_key()), "raw": raw, "base64": base64.b64encode(raw) + b"\n"}
    for name, content in forms.items():
        given = tmp_path / f"escrow.{name}"
        given.write_bytes(content)
        assert main(["enroll", "--escrow-public-key", str(given)]) == 0
        assert key_id(escrow.public_key()) in capsys.readouterr().out
        stored = data_dir / ESCROW_NAME
        assert stat.S_IMODE(stored.stat().st_mode) == 0o644 and stored.stat().st_uid == os.geteuid()
        assert enrolled_escrow_key(str(data_dir)) == escrow.public_key()
    path = tmp_path / "model.bin"
    data = os.urandom(20_000)
    path.write_bytes(data)
    assert main(["seal", str(path)]) == 0
    assert "escrow" in capsys.readouterr().out
    assert [k.kind for k in read_sealed_header(str(path)).keys] == ["machine", "escrow"]
    # recovery with the escrow private half, without the agent
    private_file = tmp_path / "escrow.pem"
    private_file.write_bytes(escrow.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    assert main(["unseal", "--escrow-key", str(private_file), str(path)]) == 0
    assert path.read_bytes() == data
    # --escrow overrides the enrolled key for one run
    other = X25519PrivateKey.generate()
    other_file = tmp_path / "other.pub.pem"
    other_file.write_bytes(public_pem(other.public_key()))
    assert main(["seal", "--escrow", str(other_file), str(path)]) == 0
    assert [k.key_id for k in read_sealed_header(str(path)).keys][1] == key_id(other.public_key())
    with pytest.raises(SealError, match="not sealed for key"):
        unseal_file(str(path), escrow)


@pytest.mark.parametrize(("content", "message"), [
    (b"hello", "neither PEM, nor 32 raw bytes, nor base64"),
    (base64.b64encode(b"x" * 31), "32 bytes, this is 31"),
    (b"\0" * 32, "low-order point"),
    (Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo),
     "not an X25519 public key"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
])
def test_an_unusable_escrow_key_is_refused_at_enrolment(tmp_path: Path, data_dir: Path, content: bytes,
                                                        message: str, capsys: pytest.CaptureFixture[str]) -> None:
    given = tmp_path / "escrow.key"
    given.write_bytes(content)
    assert main(["enroll", "--escrow-public-key", str(given)]) == 2
    assert message in capsys.readouterr().err
    assert not (data_dir / ESCROW_NAME).exists()
    with pytest.raises(SealKeyError, match=message):
        parse_public_key(content, "test")


def test_seal_refuses_an_escrow_key_file_others_may_write(tmp_path: Path, data_dir: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    given = tmp_path / "escrow.pub.pem"
    given.write_bytes(public_pem(X25519PrivateKey.generate().public_key()))
    assert main(["enroll", "--escrow-public-key", str(given)]) == 0
    os.chmod(data_dir / ESCROW_NAME, 0o666)
    path = tmp_path / "model.bin"
    path.write_bytes(b"plain" * 1000)
    assert main(["seal", str(path)]) == 2
    assert "refusing to seal for a key someone else may have put there" in capsys.readouterr().err
    assert path.read_bytes() == b"plain" * 1000


def test_enroll_needs_a_siem_or_an_escrow_key(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["enroll"]) == 2
    assert "--escrow-public-key" in capsys.readouterr().err
