"""On one thread (as batch workers compute) the parallel loops run as their serial twins: the
results must be the same, bit for bit."""

import numba
import numpy as np
import pytest

import poolcli
from poolcli import io as pio
from poolcli import topixels
from poolcli.engine import convolve as conv_engine
from poolcli.engine import pool as pool_engine


@pytest.fixture
def one_thread():
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def _photo(dtype, shape=(37, 53, 3)):
    rng = np.random.default_rng(5)
    if dtype == np.uint8 or dtype == np.uint16:
        return rng.integers(0, np.iinfo(dtype).max, shape).astype(dtype)
    return rng.normal(0, 100, shape).astype(dtype)


CASES = [
    lambda x: poolcli.convolve(x, "sobel"),
    lambda x: poolcli.convolve(x, "gaussian", sigma=2, boundary="wrap"),
    lambda x: poolcli.convolve(x, "sharpen", stride=2, boundary="constant", cval=3),
    lambda x: poolcli.convolve(x, "emboss", dilation=2, boundary="valid"),
    lambda x: poolcli.pool(x, "max", 2),
    lambda x: poolcli.pool(x, "min", 3, stride=2, padding=1, ceil_mode=True),
    lambda x: poolcli.pool(x, "avg", 2),
    lambda x: poolcli.pool(x, "avg", 3, stride=2, padding=1, count_include_pad=False),
    lambda x: poolcli.pool(x, "lp", 2, p=3.0),
    lambda x: poolcli.pool(x, "median", 3, stride=2),
    lambda x: poolcli.pool(x, "stochastic", 2, seed=7),
    lambda x: poolcli.pool(x, "max", output_size=(5, 7)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_one_thread_gives_the_same_results(case, dtype, one_thread):
    x = _photo(dtype)
    if dtype == np.float32 and case == 10:
        x = np.abs(x)  # stochastic pooling draws by value: no negative weights
    numba.set_num_threads(1)
    serial = CASES[case](x)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    parallel = CASES[case](x)
    np.testing.assert_array_equal(serial, parallel)


def test_one_thread_pixels_and_png_are_the_same(one_thread):
    result = _photo(np.float32, (31, 45, 4))
    encoded = {}
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        px = topixels.to_pixels(result, np.uint8, "normalize", 3)
        encoded[threads] = (px, pio.encode(px, True, "png"))
    (px1, png1), (pxn, pngn) = encoded.values()
    np.testing.assert_array_equal(px1, pxn)
    assert png1 == pngn


def test_every_parallel_loop_has_a_serial_twin():
    from poolcli.engine import pixels, png

    for module in (conv_engine, pool_engine, pixels, png):
        for name in dir(module):
            fn = getattr(module, name)
            if getattr(fn, "targetoptions", {}).get("parallel"):
                assert not fn.serial.targetoptions.get("parallel"), name
                assert fn.serial.py_func.__qualname__ == f"{fn.py_func.__qualname__}_serial"
