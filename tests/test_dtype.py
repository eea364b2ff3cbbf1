"""``dtype=`` on convolve and pool (contract §5): the result's type asked for, integers rounded to
nearest, half to even (as np.rint), and clipped to the type's range; 8-bit average pooling to
uint8 straight from the bytes, equal to rounding the float32 result."""

from __future__ import annotations

import numpy as np
import pytest

import poolcli


def reference(result: np.ndarray, dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.rint(result.astype(np.float64)), info.min, info.max).astype(dtype)


@pytest.mark.parametrize("shape", [(8, 8, 3), (9, 7), (64, 48, 4), (5, 6, 1)])
@pytest.mark.parametrize("size", [2, 3, (2, 3)])
def test_average_pooling_to_uint8_equals_rounding_the_float_result(shape, size):
    x = (np.random.default_rng(sum(shape)).random(shape) * 255).astype(np.uint8)
    got = poolcli.pool(x, "avg", size, dtype=np.uint8)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, reference(poolcli.pool(x, "avg", size), np.uint8))


def test_ties_round_half_to_even():
    x = np.array([[1, 2, 2, 3, 0, 255]], np.uint8)  # window means 1.5, 2.5, 127.5
    np.testing.assert_array_equal(poolcli.pool(x, "avg", (1, 2), dtype=np.uint8), [[2, 2, 128]])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32])
def test_convolve_to_integers_rounds_and_clips(dtype):
    x = (np.random.default_rng(2).random((20, 17, 3)) * 255).astype(np.uint8)
    for kernel in ("sharpen", "sobel-x", "gaussian"):
        got = poolcli.convolve(x, kernel, dtype=dtype)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, reference(poolcli.convolve(x, kernel), dtype))


def test_float_dtypes_and_the_default_rule():
    x = (np.random.default_rng(3).random((8, 8)) * 255).astype(np.uint8)
    assert poolcli.pool(x, "max", 2).dtype == np.uint8 and poolcli.pool(x, "avg", 2).dtype == np.float32
    assert poolcli.pool(x, "max", 2, dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(poolcli.convolve(x, "blur", dtype=np.float64), poolcli.convolve(x, "blur"))
    nchw = poolcli.pool(np.zeros((2, 3, 8, 8), np.uint8), "avg", 2, layout="nchw", dtype=np.uint8)
    assert nchw.shape == (2, 3, 4, 4) and nchw.dtype == np.uint8


@pytest.mark.parametrize("bad", [bool, "complex64", object, "nonsense"])
def test_a_dtype_that_is_not_a_number_type_is_a_value_error(bad):
    with pytest.raises(ValueError, match="dtype"):
        poolcli.pool(np.zeros((4, 4), np.uint8), "avg", 2, dtype=bad)
