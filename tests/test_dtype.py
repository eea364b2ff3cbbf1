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


@pytest.mark.parametrize("shape", [(8, 8, 3), (9, 7), (64, 48, 4), (5, 6, 1), (6, 9, 2), (33, 65, 3), (12, 10, 5)])
@pytest.mark.parametrize("size", [2, 3, (2, 3)])
def test_average_pooling_to_uint8_equals_rounding_the_float_result(shape, size):
    x = (np.random.default_rng(sum(shape)).random(shape) * 255).astype(np.uint8)
    got = poolcli.pool(x, "avg", size, dtype=np.uint8)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, reference(poolcli.pool(x, "avg", size), np.uint8))


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
def test_every_2x2_window_sum_rounds_as_the_float_path(channels):
    """The integer 2×2 loop: every window sum from 0 to 1020 (ties among them) on every channel."""
    t = np.arange(1021)
    quarters = [np.minimum(255, np.maximum(0, t - 255 * i)) for i in range(4)]  # four bytes summing to t
    x = np.zeros((2, 2 * t.size, channels), np.uint8)
    for c in range(channels):
        shift = (np.arange(t.size) + 97 * c) % t.size  # each channel its own order of sums
        x[0, 0::2, c], x[0, 1::2, c] = quarters[0][shift], quarters[1][shift]
        x[1, 0::2, c], x[1, 1::2, c] = quarters[2][shift], quarters[3][shift]
    got = poolcli.pool(x, "avg", 2, dtype=np.uint8, layout="hwc")
    np.testing.assert_array_equal(got, reference(poolcli.pool(x, "avg", 2, layout="hwc"), np.uint8))
    assert (x.astype(int)[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2] ==
            np.stack([(np.arange(t.size) + 97 * c) % t.size for c in range(channels)], -1)).all()


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
