"""poolcli.convolve against scipy.ndimage, the independent reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolcli
from poolcli.errors import ImageError, UsageError
from poolcli.kernels import KERNELS, get_kernel

ndi = pytest.importorskip("scipy.ndimage")

SCIPY_MODES = ["reflect", "mirror", "nearest", "wrap", "constant"]
RNG = np.random.default_rng(20261125)


def image(shape, dtype):
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    return (RNG.random(shape) * 255 - 20).astype(dtype)


def dilate(k, d):
    """The kernel with d−1 zeros between taps, and the scipy origin that keeps poolcli's anchor."""
    kh, kw = k.shape
    big = np.zeros(((kh - 1) * d + 1, (kw - 1) * d + 1))
    big[::d, ::d] = k
    origin = [(kn // 2) * d - (bn // 2) for kn, bn in zip(k.shape, big.shape)]
    return big, origin


def reference(img, k, mode, cval=0.0, stride=1, dilation=1, flip=False):
    """scipy.ndimage.correlate (or convolve for flip) per channel, float64; 'valid' crops it."""
    x = img.astype(np.float64)
    x3 = x[:, :, None] if x.ndim == 2 else x
    kk, origin = dilate(np.asarray(k, float), dilation)
    fn = ndi.convolve if flip else ndi.correlate
    if flip:  # convolve's origin mirrors: the anchor of the flipped kernel
        origin = [-o - (1 - n % 2) for o, n in zip(origin, kk.shape)]
    smode = "constant" if mode == "valid" else mode
    out = np.stack([fn(x3[:, :, c], kk, mode=smode, cval=cval, origin=origin) for c in range(x3.shape[2])], -1)
    if mode == "valid":
        kh, kw = np.asarray(k).shape
        t, lft = (kh // 2) * dilation, (kw // 2) * dilation
        H, W = x3.shape[:2]
        out = out[t : H - ((kh - 1) * dilation - t), lft : W - ((kw - 1) * dilation - lft)]
    out = out[::stride, ::stride]
    return out[:, :, 0] if img.ndim == 2 else out


def close(a, b, scale=255.0):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-5 * scale)


@pytest.mark.parametrize("mode", SCIPY_MODES + ["valid"])
@pytest.mark.parametrize("name", ["sharpen", "emboss", "blur", "sobel-x", "laplacian", "unsharp", "box"])
def test_named_kernels_every_boundary(mode, name):
    img = image((23, 31, 3), np.uint8)
    got = poolcli.convolve(img, name, boundary=mode, cval=7.5)
    assert got.dtype == np.float32 and got.shape[2] == 3
    close(got, reference(img, get_kernel(name), mode, cval=7.5))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("mode", SCIPY_MODES)
def test_dtypes(dtype, mode):
    img = image((17, 13), dtype)
    k = RNG.normal(size=(3, 4))
    got = poolcli.convolve(img, k, boundary=mode)
    assert got.shape == (17, 13) and got.dtype == np.float32
    scale = 65535.0 if dtype == np.uint16 else 255.0
    close(got, reference(img, k, mode), scale * 4)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (2, 2), (4, 3), (5, 5), (1, 9), (9, 1), (6, 2)])
@pytest.mark.parametrize("mode", SCIPY_MODES + ["valid"])
def test_odd_even_and_line_kernels(shape, mode):
    img = image((19, 21, 2), np.float32)
    k = RNG.normal(size=shape)
    close(poolcli.convolve(img, k, boundary=mode), reference(img, k, mode), 255 * 4)


@pytest.mark.parametrize("shape", [(3, 3), (1, 3), (3, 1), (1, 5)])
@pytest.mark.parametrize("mode", SCIPY_MODES + ["valid"])
def test_separable_kernels_match(shape, mode):
    """Rank-1 kernels go through the two-pass path; the result must not change."""
    k = np.outer(RNG.normal(size=shape[0]), RNG.normal(size=shape[1]))
    img = image((20, 24, 3), np.uint8)
    close(poolcli.convolve(img, k, boundary=mode), reference(img, k, mode), 255 * 4)


@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("mode", SCIPY_MODES + ["valid"])
def test_stride_and_dilation(dilation, stride, mode):
    img = image((29, 26, 3), np.uint8)
    for k in (RNG.normal(size=(3, 3)), RNG.normal(size=(2, 4)), get_kernel("blur")):
        got = poolcli.convolve(img, k, boundary=mode, stride=stride, dilation=dilation)
        close(got, reference(img, k, mode, stride=stride, dilation=dilation), 255 * 4)


@pytest.mark.parametrize("shape", [(3, 3), (2, 2), (3, 4)])
@pytest.mark.parametrize("mode", SCIPY_MODES)
def test_flip_is_true_convolution(shape, mode):
    img = image((15, 16), np.float64)
    k = RNG.normal(size=shape)
    close(poolcli.convolve(img, k, boundary=mode, flip=True), reference(img, k, mode, flip=True), 255 * 4)
    # and directly: flipping twice is correlating
    close(poolcli.convolve(img, k[::-1, ::-1], boundary=mode, flip=True), reference(img, k, mode), 255 * 4)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("mode", SCIPY_MODES)
def test_gaussian_equals_gaussian_filter(sigma, mode):
    img = image((40, 37, 3), np.uint8)
    got = poolcli.convolve(img, "gaussian", sigma=sigma, boundary=mode)
    want = ndi.gaussian_filter(img.astype(np.float64), sigma=(sigma, sigma, 0), mode=mode)
    close(got, want)


@pytest.mark.parametrize("name,base", [("sobel", "sobel-x"), ("scharr", "scharr-x"), ("prewitt", "prewitt-x")])
@pytest.mark.parametrize("mode", SCIPY_MODES)
def test_gradient_magnitude_is_hypot(name, base, mode):
    img = image((33, 28, 3), np.uint8)
    kx = get_kernel(base)
    gx = reference(img, kx, mode)
    gy = reference(img, kx.T, mode)
    close(poolcli.convolve(img, name, boundary=mode), np.hypot(gx, gy), 255 * 8)


def test_sobel_x_as_written():
    assert get_kernel("sobel-x").tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]


def test_hand_worked_sobel_x():
    img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    # horizontal ramp of slope 1: interior response (1+2+1)·2 = 8, edges halve with 'nearest'
    np.testing.assert_array_equal(poolcli.convolve(img, "sobel-x", boundary="nearest")[1], [4, 8, 8, 4])


def test_valid_shrinks_like_a_cnn_layer():
    img = np.ones((10, 12), np.float32)
    assert poolcli.convolve(img, np.ones((3, 5)), boundary="valid").shape == (8, 8)
    assert poolcli.convolve(img, np.ones((3, 3)), boundary="valid", stride=2).shape == (4, 5)
    assert poolcli.convolve(img, np.ones((3, 3)), boundary="valid", dilation=2).shape == (6, 8)


def test_every_named_kernel_runs_and_is_finite():
    img = image((12, 12, 3), np.uint8)
    for name in KERNELS:
        out = poolcli.convolve(img, name)
        assert out.shape == img.shape and np.isfinite(out).all(), name


def test_identity_is_identity():
    img = image((9, 11, 3), np.uint16)
    np.testing.assert_array_equal(poolcli.convolve(img, "identity"), img.astype(np.float32))


def test_one_pixel_image_every_boundary():
    img = np.array([[200]], np.uint8)
    for mode in SCIPY_MODES:
        close(poolcli.convolve(img, "sharpen", boundary=mode), reference(img, get_kernel("sharpen"), mode))


def test_kernel_far_larger_than_image():
    img = image((3, 4), np.float32)
    k = RNG.normal(size=(9, 11))
    for mode in SCIPY_MODES:
        close(poolcli.convolve(img, k, boundary=mode), reference(img, k, mode), 255 * 10)


def test_boundary_aliases():
    img = image((10, 10), np.uint8)
    for alias, canon in [("reflect101", "mirror"), ("replicate", "nearest"), ("edge", "nearest"),
                         ("circular", "wrap"), ("tile", "wrap"), ("zero", "constant"), ("zeros", "constant")]:  # fmt: skip
        np.testing.assert_array_equal(
            poolcli.convolve(img, "emboss", boundary=alias), poolcli.convolve(img, "emboss", boundary=canon)
        )


def test_box_and_gaussian_size():
    assert get_kernel("box", size=5).shape == (5, 5)
    np.testing.assert_allclose(get_kernel("box", size=4).sum(), 1.0)
    assert get_kernel("gaussian", sigma=2).shape == (17, 17)
    assert get_kernel("gaussian", size=7).shape == (7, 7)
    np.testing.assert_allclose(get_kernel("gaussian", sigma=3).sum(), 1.0)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda img: poolcli.convolve(img, "sobell"), "did you mean 'sobel'"),
        (lambda img: poolcli.convolve(img, "blur", boundary="reflekt"), "did you mean 'reflect'"),
        (lambda img: poolcli.convolve(img, "blur", stride=0), "stride must be at least 1"),
        (lambda img: poolcli.convolve(img, "blur", dilation=0), "dilation must be at least 1"),
        (lambda img: poolcli.convolve(img, [[1, np.nan]]), "finite"),
        (lambda img: poolcli.convolve(img, np.zeros((0, 3))), "non-empty"),
        (lambda img: poolcli.convolve(img, "sobel", size=3), "takes no --size"),
        (lambda img: poolcli.convolve(img, "gaussian", sigma=-1), "positive"),
        (lambda img: poolcli.convolve(np.zeros((2, 2, 2, 2)), "blur"), "layout=\"nchw\""),  # 4-D: a batch, whose layout must be named
    ],
)
def test_bad_arguments_raise_valueerror(call, message):
    with pytest.raises(ValueError, match=message):
        call(image((8, 8), np.uint8))


def test_valid_larger_than_image_is_an_image_error():
    with pytest.raises(ImageError, match="smaller than the kernel"):
        poolcli.convolve(np.zeros((4, 4)), np.ones((5, 5)), boundary="valid")


def test_empty_image_is_an_image_error():
    with pytest.raises(ImageError, match="empty"):
        poolcli.convolve(np.zeros((0, 4)), "blur")


def test_usage_errors_are_valueerrors():
    assert issubclass(UsageError, ValueError) and issubclass(ImageError, ValueError)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 14),
    w=st.integers(1, 14),
    c=st.integers(1, 4),
    kh=st.integers(1, 6),
    kw=st.integers(1, 6),
    mode=st.sampled_from(SCIPY_MODES + ["valid"]),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_kernels_and_shapes(h, w, c, kh, kw, mode, stride, dilation, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, c)).astype(np.uint8)
    k = rng.normal(size=(kh, kw))
    if mode == "valid" and (h <= (kh - 1) * dilation or w <= (kw - 1) * dilation):
        with pytest.raises(ImageError):
            poolcli.convolve(img, k, boundary=mode, stride=stride, dilation=dilation)
        return
    got = poolcli.convolve(img, k, boundary=mode, stride=stride, dilation=dilation)
    close(got, reference(img, k, mode, stride=stride, dilation=dilation), 255 * kh * kw)
