"""What `poolcli warmup` compiles: every engine loop for every image dtype, in the parallel form
(one image on all threads) and the serial one (batch workers, small images).

The two forms are separate compiled functions with separate cache files, and so are the
convolution and the pooling loops: two processes compile them at once, one core each, without
ever writing the same function's cache index (:func:`halves`).
"""

from __future__ import annotations

from collections.abc import Callable


def steps(parallel: bool) -> dict[str, list[tuple[str, Callable[[], object]]]]:
    """(label, call) pairs that compile (or load) every loop in one form, by family."""
    import numpy as np

    from . import api, images

    def form():  # tiny arrays, and the other warmup process keeping a core busy: force the form
        api.set_threads(max(2, api.threads()) if parallel else 1)
        api.FORCE_PARALLEL = parallel and api.threads() > 1

    def convolution(dt):
        def go():
            form()
            img = np.zeros((6, 6, 3), dt)
            for kernel in ("sharpen", "blur", "sobel", "emboss"):
                api.convolve(img, kernel)
            api.convolve(img, "sharpen", stride=2)

        return go

    def pooling(dt):
        def go():
            form()
            img = np.zeros((6, 6, 3), dt)
            for mode in api.MODES:
                api.pool(img, mode, 2, seed=0)
                api.pool(img, mode, 3, stride=2, padding=1, seed=0)
            api.apply_pool(img, api.pool_spec("avg", 2), as_pixels=True)  # 8-bit pixels directly

        return go

    def codecs():
        form()
        for dt in (np.uint8, np.uint16):  # float results to pixels, the PNG codec, --gray
            images._luma(np.zeros((6, 6, 3), dt))
            for scale in ("clip", "normalize"):
                px = images.to_pixels(np.zeros((6, 6, 3), np.float32), dt, scale, 3)
            images.decode(images.encode(px, False, "png"), "warmup")

    dtypes = (np.uint8, np.uint16, np.float32, np.float64)
    return {
        "convolution": [(f"convolution, {np.dtype(dt).name}", convolution(dt)) for dt in dtypes],
        "pooling": [(f"pooling, {np.dtype(dt).name}", pooling(dt)) for dt in dtypes],
        "codecs": [("pixels and PNG codec", codecs)],
    }


def halves() -> tuple[list, list]:
    """Two lists of (label, call) that share no compiled function: parallel convolution and serial
    pooling, and parallel pooling, serial convolution and the codecs (both forms)."""
    par, ser = steps(True), steps(False)
    label = lambda form, items: [(f"{lbl} ({form})", call) for lbl, call in items]  # noqa: E731
    first = label("parallel", par["convolution"]) + label("serial", ser["pooling"])
    second = label("parallel", par["pooling"]) + label("serial", ser["convolution"])
    return first, second + label("parallel", par["codecs"]) + label("serial", ser["codecs"])
