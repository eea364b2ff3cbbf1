"""What `poolcli warmup` compiles: every engine loop for every image dtype, in the parallel form
(one image on all threads) and the serial one (batch workers, small images).

The two forms are separate compiled functions with separate cache files, and so are the
convolution and the pooling loops: two processes compile them at once, one core each, without
ever writing the same function's cache index (:func:`halves`).
"""

from __future__ import annotations

import os
from collections.abc import Callable


def steps(parallel: bool) -> dict[str, list[tuple[str, Callable[[], object]]]]:
    """(label, call) pairs that compile (or load) every loop in one form, by family."""
    import numpy as np

    from . import api, io, layers, topixels
    from .engine import runtime

    def form():  # tiny arrays, and the other warmup process keeping a core busy: force the form
        runtime.set_threads(max(2, runtime.threads()) if parallel else 1)
        runtime.FORCE_PARALLEL = parallel and runtime.threads() > 1

    def convolution(dt):
        def go():
            form()
            img = np.zeros((6, 6, 3), dt)
            for kernel in ("sharpen", "blur", "sobel", "emboss"):
                api.convolve(img, kernel)
            api.convolve(img, "sharpen", stride=2)
            layer = np.zeros((4, 3, 3, 3), np.float32)  # conv2d: every input dtype becomes float32 first
            for stride in (1, 2):
                layers.conv2d(np.moveaxis(img, -1, 0), layer, stride=stride, padding=1)

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
            topixels.luma(np.zeros((6, 6, 3), dt))
            for scale in ("clip", "normalize"):
                px = topixels.to_pixels(np.zeros((6, 6, 3), np.float32), dt, scale, 3)
            io.decode(io.encode(px, False, "png"), "warmup")

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


def compile_all(on_step: Callable[[str, int, int], None] = lambda label, done, total: None) -> None:
    """Compile (or load) every loop in both forms, by two processes at once: this one takes the
    first half of :func:`halves`, a forked child the second, on the other core, writing one
    byte per step done to a pipe.  ``on_step(label, done, total)`` is told as steps start and
    finish; RuntimeError if the child failed."""
    from .engine import runtime

    runtime.take_compile_ms()
    os.environ.pop("POOLCLI_ENGINE", None)  # the point is compiling: never the NumPy forms
    runtime.use_engine("numba")
    runtime.engine()
    parallel, serial = halves()
    total = len(parallel) + len(serial)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the second half, on the other core; one byte per step done
        code = 0
        try:
            os.close(read)
            for _, step in serial:
                step()
                os.write(write, b".")
        except BaseException:  # noqa: BLE001 - the parent says what failed
            code = 1
        os._exit(code)
    os.close(write)
    done_serial = 0
    for k, (label, step) in enumerate(parallel):
        on_step(label, k + done_serial, total)
        step()
        os.set_blocking(read, False)
        try:
            done_serial += len(os.read(read, 64))
        except BlockingIOError:
            pass
        on_step(label, k + 1 + done_serial, total)
    os.set_blocking(read, True)
    while chunk := os.read(read, 64):
        done_serial += len(chunk)
        on_step("the serial forms", len(parallel) + done_serial, total)
    os.close(read)
    _, status = os.waitpid(child, 0)
    if status != 0 or done_serial != len(serial):
        raise RuntimeError("compiling in the second process failed")
