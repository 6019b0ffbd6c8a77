"""Element values read back from every encoding the similarity corners use, checked against torch and numpy."""

from __future__ import annotations

import numpy as np
import pytest

from weightwarden.agent.fingerprint import encodings

torch = pytest.importorskip("torch")


def raw(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values).view(np.uint8).reshape(-1)


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2"])
def test_every_float8_byte_reads_as_torch_reads_it(dtype: str) -> None:
    every = torch.arange(256, dtype=torch.uint8).view(getattr(torch, dtype))
    expected = every.to(torch.float32).numpy()
    found = encodings.decode(encodings.F8_E4M3 if dtype.endswith("fn") else encodings.F8_E5M2,
                             np.arange(256, dtype=np.uint8), 256)
    np.testing.assert_array_equal(found, expected)  # NaNs compare equal here, infinities too


def test_bfloat16_both_byte_orders_read_as_torch_writes_them() -> None:
    values = torch.randn(1000, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    little = values.view(torch.int16).numpy().astype("<i2")
    expected = values.to(torch.float32).numpy()
    np.testing.assert_array_equal(encodings.decode(encodings.BF16_LE, raw(little), 1000), expected)
    np.testing.assert_array_equal(encodings.decode(encodings.BF16_BE, raw(little.astype(">i2")), 1000), expected)


@pytest.mark.parametrize("encoding", ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8", encodings.INT8])
def test_ieee_floats_and_int8_in_either_byte_order(encoding: str) -> None:
    values = np.random.default_rng(2).standard_normal(333) * 50
    stored = values.astype(np.int8 if encoding == encodings.INT8 else np.dtype(encoding))
    found = encodings.decode(encoding, raw(stored), 333)
    np.testing.assert_array_equal(found, stored.astype(np.float32))
    assert found.dtype == np.float32 and encodings.decodable(encoding)


def test_unknown_encodings_are_refused() -> None:
    assert not encodings.decodable("<i4") and not encodings.decodable("ggml:17")  # IQ2_XS: no decoder
    with pytest.raises(ValueError):
        encodings.decode("<i4", np.zeros(8, dtype=np.uint8), 2)
