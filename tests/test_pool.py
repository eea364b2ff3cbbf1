"""poolcli.pool against a NumPy reference (always) and PyTorch (when installed)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolcli
from poolcli import topixels
from poolcli.errors import ImageError

import naive

RNG = np.random.default_rng(7)


def image(shape, dtype):
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    return (RNG.random(shape) * 255).astype(dtype)


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=2e-6, atol=1e-4)


# ------------------------------------------------------------------ hand-worked


X44 = np.array([[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]], np.uint8)


def test_hand_worked_4x4():
    np.testing.assert_array_equal(poolcli.pool(X44, "max", 2), [[4, 8], [12, 16]])
    np.testing.assert_array_equal(poolcli.pool(X44, "min", 2), [[1, 5], [9, 13]])
    np.testing.assert_array_equal(poolcli.pool(X44, "avg", 2), [[2.5, 6.5], [10.5, 14.5]])
    np.testing.assert_array_equal(poolcli.pool(X44, "median", 2), [[2, 6], [10, 14]])
    close(poolcli.pool(X44, "lp", 2), [[np.sqrt(30), np.sqrt(174)], [np.sqrt(446), np.sqrt(846)]])


def test_hand_worked_ceil_mode_and_padding():
    # 4x4, window 3, stride 2, padding 1, ceil: 3x3, the last window starts inside the image
    assert poolcli.pool(X44, "max", 3, stride=2, padding=1, ceil_mode=True).shape == (3, 3)
    # 5 wide, window 2, stride 2, padding 1, ceil: a 4th window would start in the right padding
    x = np.arange(5, dtype=np.float32)[None, :]
    np.testing.assert_array_equal(poolcli.pool(x, "max", (1, 2), padding=(0, 1), ceil_mode=True), [[0, 2, 4]])
    # 5 wide, window 2, stride 2, ceil: 3 outputs, the last window overhangs the edge
    np.testing.assert_array_equal(poolcli.pool(x, "max", (1, 2), ceil_mode=True), [[1, 3, 4]])
    # avg of the overhanging window divides by the cells inside the image (no padding to count)
    np.testing.assert_array_equal(poolcli.pool(x, "avg", (1, 2), ceil_mode=True), [[0.5, 2.5, 4.0]])


def test_avg_divisor_counts_padding_but_not_overhang():
    """With padding, ceil-mode windows overhanging the padded edge divide by their clipped size."""
    x = np.ones((5, 5), np.float32)
    got = poolcli.pool(x, "avg", 2, stride=2, padding=1, ceil_mode=True)
    ref = naive.pool(x[:, :, None], "avg", 2, 2, 1, 1, True)[:, :, 0]
    close(got, ref)
    assert got[0, 0] == pytest.approx(0.25)  # one real cell, 4 counted (include pad)
    got2 = poolcli.pool(x, "avg", 2, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_array_equal(got2, np.ones_like(got2))


# ------------------------------------------------------------------ against the reference

CASES = [
    # k, s, p, d, ceil
    (2, None, 0, 1, False),
    (3, None, 0, 1, False),
    (3, 2, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    (2, 2, 1, 1, True),
    (3, 1, 1, 1, False),
    ((2, 3), (1, 2), (1, 1), 1, True),
    (3, 2, 1, 2, False),
    (2, 3, 0, 2, True),
    (4, 3, 2, 1, True),
    (5, 2, 2, 1, True),
]


def _applies(mode, case):
    """PyTorch's avg and lp pools have no dilation (see test_avg_dilation), lp none padding."""
    k, s, p, d, ceil = case
    return not ((mode in ("avg", "lp") and d != 1) or (mode == "lp" and p != 0))


@pytest.mark.parametrize(
    "mode,k,s,p,d,ceil",
    [(m, *c) for m in ("max", "min", "avg", "lp", "median") for c in CASES if _applies(m, c)],
)
def test_modes_match_reference(mode, k, s, p, d, ceil):
    x = image((13, 11, 3), np.float32)
    got = poolcli.pool(x, mode, k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    close(got, naive.pool(x, mode, k, s, p, d, ceil))


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("k,s,p,d,ceil", [c for c in CASES if c[3] == 1])
def test_avg_count_include_pad(include, k, s, p, d, ceil):
    x = image((10, 9, 2), np.uint8)
    got = poolcli.pool(x, "avg", k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=include)
    close(got, naive.pool(x, "avg", k, s, p, d, ceil, count_include_pad=include))


def test_avg_divisor_override():
    x = image((8, 8, 3), np.uint8)
    close(poolcli.pool(x, "avg", 3, stride=2, padding=1, divisor=5), naive.pool(x, "avg", 3, 2, 1, divisor=5))
    close(poolcli.pool(x, "avg", 2, divisor=-2), naive.pool(x, "avg", 2, divisor=-2))


def test_avg_dilation():
    """Our extension: taps D apart, divided by the taps counted as for D = 1."""
    x = image((12, 12, 1), np.float64)
    close(poolcli.pool(x, "avg", 2, stride=2, dilation=2), naive.pool(x, "avg", 2, 2, 0, 2))


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0, 0.5])
def test_lp_powers(power):
    x = image((9, 10, 3), np.uint8)
    close(
        poolcli.pool(x, "lp", 3, stride=2, ceil_mode=True, p=power), naive.pool(x, "lp", 3, 2, 0, 1, True, power=power)
    )


def test_l2_alias():
    x = image((6, 6), np.uint8)
    np.testing.assert_array_equal(poolcli.pool(x, "l2", 2, p=7.0), poolcli.pool(x, "lp", 2, p=2.0))


@pytest.mark.parametrize("out", [(1, 1), (3, 3), (4, 5), (7, 2), (13, 11)])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_adaptive(out, mode):
    x = image((13, 11, 3), np.float32)
    close(poolcli.pool(x, mode, output_size=out), naive.adaptive(x, mode, *out))


def test_global_is_whole_image():
    x = image((17, 23, 3), np.uint16)
    np.testing.assert_array_equal(poolcli.pool(x, "max", output_size=(1, 1))[0, 0], x.reshape(-1, 3).max(0))
    close(poolcli.pool(x, "avg", output_size=(1, 1))[0, 0], x.reshape(-1, 3).mean(0))


# ------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("mode", ["max", "min", "median", "stochastic"])
def test_selection_modes_keep_dtype(dtype, mode):
    x = image((9, 8, 3), dtype)
    for kwargs in ({}, {"stride": 1, "padding": 1}):
        out = poolcli.pool(x, mode, 2, seed=3, **kwargs)
        assert out.dtype == dtype


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("mode", ["avg", "lp"])
def test_averaging_modes_give_float32(dtype, mode):
    x = image((9, 8), dtype)
    assert poolcli.pool(x, mode, 2).dtype == np.float32
    assert poolcli.pool(x, mode, 3, stride=2, ceil_mode=True).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_uint_max_exact_on_fast_and_general_paths(dtype):
    x = image((20, 30, 4), dtype)
    fast = poolcli.pool(x, "max", 2)
    np.testing.assert_array_equal(fast, x.reshape(10, 2, 15, 2, 4).max(axis=(1, 3)))
    general = poolcli.pool(x, "max", 2, stride=2, padding=1)
    np.testing.assert_array_equal(general, naive.pool(x, "max", 2, 2, 1).astype(dtype))


def test_nan_propagates_in_max():
    x = np.ones((4, 4), np.float32)
    x[0, 0] = np.nan
    out = poolcli.pool(x, "max", 2)
    assert np.isnan(out[0, 0]) and out[1, 1] == 1
    assert np.isnan(poolcli.pool(x, "max", 2, stride=1)[0, 0])


# ------------------------------------------------------------------ stochastic


def test_stochastic_repeatable_and_from_window():
    x = image((30, 30, 3), np.uint8)
    a = poolcli.pool(x, "stochastic", 3, stride=2, padding=1, seed=42)
    b = poolcli.pool(x, "stochastic", 3, stride=2, padding=1, seed=42)
    np.testing.assert_array_equal(a, b)
    c = poolcli.pool(x, "stochastic", 3, stride=2, padding=1, seed=43)
    assert (a != c).any()
    lo = naive.pool(x, "min", 3, 2, 1)
    hi = naive.pool(x, "max", 3, 2, 1)
    assert ((a >= lo) & (a <= hi)).all()
    # every value is one of its window's cells
    xp = np.pad(x.astype(int), ((1, 1), (1, 1), (0, 0)), constant_values=-1)
    for oy in range(a.shape[0]):
        for ox in range(a.shape[1]):
            win = xp[oy * 2 : oy * 2 + 3, ox * 2 : ox * 2 + 3]
            for ch in range(3):
                assert a[oy, ox, ch] in win[:, :, ch]


def test_stochastic_probability_proportional_to_value():
    x = np.array([[1.0, 3.0]], np.float32)
    picks = np.array([poolcli.pool(x, "stochastic", (1, 2), seed=s)[0, 0] for s in range(4000)])
    assert abs((picks == 3.0).mean() - 0.75) < 0.03
    zeros = np.zeros((1, 2), np.float32)
    assert poolcli.pool(zeros, "stochastic", (1, 2), seed=1)[0, 0] == 0


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(mode="maxx"), "did you mean 'max'"),
        (dict(size=0), "size must be at least 1"),
        (dict(stride=0), "stride must be at least 1"),
        (dict(dilation=0), "dilation must be at least 1"),
        (dict(size=2, padding=2), "more than half the window"),
        (dict(output_size=(0, 2)), "output_size must be at least 1"),
        (dict(mode="lp", p=0), "p must be a positive"),
        (dict(mode="lp", p=-1), "p must be a positive"),
        (dict(mode="avg", divisor=0), "divisor must not be 0"),
        (dict(mode="stochastic", seed=-1), "seed must be"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        poolcli.pool(image((8, 8), np.uint8), **{"mode": "max", "size": 2, **kwargs})


def test_window_larger_than_image_is_an_image_error():
    with pytest.raises(ImageError, match="smaller than the pooling window"):
        poolcli.pool(np.zeros((1, 1), np.uint8), "max", 2)


# ------------------------------------------------------------------ property-based


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 12), w=st.integers(1, 12), k=st.integers(1, 4), s=st.integers(1, 4),
    p=st.integers(0, 2), d=st.integers(1, 3), ceil=st.booleans(),
    mode=st.sampled_from(["max", "min", "avg", "median"]), seed=st.integers(0, 2**32 - 1),
)  # fmt: skip
def test_random_pools(h, w, k, s, p, d, ceil, mode, seed):
    p = min(p, k // 2)
    if mode == "avg":
        d = 1
    x = np.random.default_rng(seed).integers(0, 256, (h, w, 2)).astype(np.float32)
    if naive.out_size(h, k, s, p, d, ceil) < 1 or naive.out_size(w, k, s, p, d, ceil) < 1:
        with pytest.raises(ImageError):
            poolcli.pool(x, mode, k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
        return
    close(
        poolcli.pool(x, mode, k, stride=s, padding=p, dilation=d, ceil_mode=ceil), naive.pool(x, mode, k, s, p, d, ceil)
    )


# ------------------------------------------------------------------ PyTorch itself


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _t(torch, x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(np.float32))


def _n(t):
    return t[0].numpy().transpose(1, 2, 0)


@pytest.mark.parametrize("k,s,p,d,ceil", CASES)
def test_torch_max_pool2d(torch, k, s, p, d, ceil):
    x = image((13, 11, 3), np.float32)
    want = torch.nn.functional.max_pool2d(_t(torch, x), k, s, p, d, ceil_mode=ceil)
    np.testing.assert_array_equal(poolcli.pool(x, "max", k, stride=s, padding=p, dilation=d, ceil_mode=ceil), _n(want))
    want_min = -torch.nn.functional.max_pool2d(-_t(torch, x), k, s, p, d, ceil_mode=ceil)
    np.testing.assert_array_equal(
        poolcli.pool(x, "min", k, stride=s, padding=p, dilation=d, ceil_mode=ceil), _n(want_min)
    )


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("divisor", [None, 3])
@pytest.mark.parametrize("k,s,p,d,ceil", [c for c in CASES if c[3] == 1])
def test_torch_avg_pool2d(torch, k, s, p, d, ceil, include, divisor):
    x = image((13, 11, 3), np.uint8)
    want = torch.nn.functional.avg_pool2d(_t(torch, x), k, s, p, ceil, include, divisor)
    got = poolcli.pool(x, "avg", k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=include, divisor=divisor)
    np.testing.assert_allclose(got, _n(want), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("k,s,ceil", [(2, None, False), (3, 2, True), ((2, 3), (1, 2), True), (3, 3, True)])
def test_torch_lp_pool2d(torch, power, k, s, ceil):
    x = image((13, 11, 3), np.uint8)
    want = torch.nn.functional.lp_pool2d(_t(torch, x).double(), power, k, s, ceil).float()
    got = poolcli.pool(x, "lp", k, stride=s, ceil_mode=ceil, p=power)
    np.testing.assert_allclose(got, _n(want), rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("out", [(1, 1), (3, 3), (4, 5), (7, 2)])
def test_torch_adaptive(torch, out):
    x = image((13, 11, 3), np.float32)
    np.testing.assert_array_equal(
        poolcli.pool(x, "max", output_size=out), _n(torch.nn.functional.adaptive_max_pool2d(_t(torch, x), out))
    )
    np.testing.assert_allclose(
        poolcli.pool(x, "avg", output_size=out),
        _n(torch.nn.functional.adaptive_avg_pool2d(_t(torch, x), out)), rtol=1e-6,
    )  # fmt: skip


@pytest.mark.parametrize("shape", [(101, 64, 3), (64, 63, 1), (40, 40, 4), (30, 31, 2), (9, 7, 3)])
@pytest.mark.parametrize("size", [2, 3, (2, 3), 4])
def test_avg_pool_straight_to_pixels_equals_rounding_the_float_result(shape, size):
    """The command line's 8-bit average pooling gives exactly the float32 result rounded by the
    clip rule (round half to even), alpha included."""
    from poolcli import api

    img = np.random.default_rng(sum(shape)).integers(0, 256, shape).astype(np.uint8)
    spec = api.pool_spec("avg", size)
    assert api.direct_pixels(img, spec)
    got = api.apply_pool(img, spec, as_pixels=True)
    assert got.dtype == np.uint8
    want = topixels.to_pixels(api.apply_pool(img, spec), np.uint8, "clip", shape[2])
    np.testing.assert_array_equal(got, want)
    assert not api.direct_pixels(img, api.pool_spec("avg", size, padding=1 if size != (2, 3) else 0, stride=1))
