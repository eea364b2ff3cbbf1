"""The first run on a fresh install (issue #12): it says once that it is compiling, and
later runs load the code from the cache without a word."""

from __future__ import annotations

import os

import numpy as np

from hostile import encoded, photo

COMPILED = {"POOLCLI_ENGINE": "numba"}  # a small image computes on NumPy forms unless told otherwise


def test_a_small_job_on_an_empty_cache_compiles_nothing(cli, tmp_path):
    """A few small images are computed by the loops' NumPy forms (poolcli.engine.numpy_forms):
    nothing is compiled or announced, no cache is written, and the files are the compiled
    loops' to the byte."""
    for n in range(2):
        (tmp_path / f"i{n}.png").write_bytes(encoded(photo(seed=n), "PNG"))
    fresh = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    for command in (["pool", "-m", "avg", "-s", "2"], ["convolve", "-k", "sobel"]):
        cold = cli(*command, "i0.png", "i1.png", "-o", "cold/", "--json", env=fresh)
        assert cold.code == 0 and "compiling" not in cold.stderr, cold
        assert cold.json["totals"]["compile_ms"] == 0
        assert not (tmp_path / "cache").exists()
        compiled = {"NUMBA_CACHE_DIR": str(tmp_path / "other-cache"), **COMPILED}
        loops = cli(*command, "i0.png", "i1.png", "-o", "loops/", "-q", env=compiled)
        assert loops.code == 0, loops
        for name in os.listdir(tmp_path / "cold"):
            assert (tmp_path / "cold" / name).read_bytes() == (tmp_path / "loops" / name).read_bytes()


def test_compiling_is_announced_once(cli, tmp_path):
    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    fresh = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), **COMPILED}
    first = cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "b.png", env=fresh)
    assert first.code == 0, first
    notices = [ln for ln in first.stderr.splitlines() if "compiling the image loops for this CPU, once" in ln]
    assert len(notices) == 1 and first.stderr.index(notices[0]) == 0  # before anything else
    again = cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "c.png", env=fresh)
    assert again.code == 0 and "compiling" not in again.stderr
    quiet = cli("pool", "a.png", "-m", "min", "-s", "2", "-o", "d.png", "-q", env=fresh)
    assert quiet.code == 0 and quiet.stderr == ""


def test_small_images_run_the_serial_loops_with_the_same_results():
    """Arrays below runtime.SERIAL_BELOW elements run on one thread; the results are the parallel
    loops' to the bit (tests/test_threads.py checks every loop's twins too)."""
    import poolcli
    from poolcli.engine import runtime

    img = (np.random.default_rng(0).random((700, 800, 3)) * 255).astype(np.uint8)  # 1.7 M elements
    parallel = poolcli.convolve(img, "sobel")
    old = runtime.SERIAL_BELOW
    try:
        runtime.SERIAL_BELOW = img.size + 1
        np.testing.assert_array_equal(poolcli.convolve(img, "sobel"), parallel)
    finally:
        runtime.SERIAL_BELOW = old


def test_a_cache_baked_in_one_folder_starts_a_second_process_warm(cli, tmp_path):
    """The container recipe (README "Fresh machines and containers"): the cache built into one
    folder (as `RUN poolcli warmup` does at image build time), copied elsewhere (as an image
    layer or a shared volume), and a new process pointed at the copy loads instead of compiling."""
    import shutil

    (tmp_path / "a.png").write_bytes(encoded(photo(), "PNG"))
    bake = {"NUMBA_CACHE_DIR": str(tmp_path / "build-cache"), "NUMBA_CPU_NAME": "generic", **COMPILED}
    first = cli("convolve", "a.png", "-k", "sobel", "-o", "b.png", "--json", env=bake)
    assert first.code == 0 and first.json["totals"]["compile_ms"] > 0, first
    shutil.copytree(tmp_path / "build-cache", tmp_path / "image-cache")
    shutil.rmtree(tmp_path / "build-cache")
    baked = {"NUMBA_CACHE_DIR": str(tmp_path / "image-cache"), "NUMBA_CPU_NAME": "generic", **COMPILED}
    second = cli("convolve", "a.png", "-k", "sobel", "-o", "c.png", "--json", env=baked)
    assert second.code == 0 and "compiling" not in second.stderr, second
    assert second.json["totals"]["compile_ms"] < first.json["totals"]["compile_ms"] / 5, (first.json, second.json)
    assert (tmp_path / "b.png").read_bytes() == (tmp_path / "c.png").read_bytes()


def test_a_batch_on_an_empty_cache_compiles_the_codec_beside_the_job(cli, tmp_path):
    """On an empty cache a batch's warm-up forks a helper that compiles the PNG codec while the
    parent compiles the job (runner.workers.codecs_ahead): the files come out as on a warm cache,
    and no cache file is left half-written."""
    for n in range(3):
        (tmp_path / f"i{n}.png").write_bytes(encoded(photo(seed=n), "PNG"))
    fresh = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), **COMPILED}
    cold = cli("pool", "i0.png", "i1.png", "i2.png", "-m", "max", "-s", "2", "-o", "cold/", "--jobs", "2", env=fresh)
    assert cold.code == 0, cold
    warm = cli("pool", "i0.png", "i1.png", "i2.png", "-m", "max", "-s", "2", "-o", "warm/", "--jobs", "2", env=fresh)
    assert warm.code == 0 and "compiling" not in warm.stderr, warm
    for n in range(3):
        assert (tmp_path / "cold" / f"i{n}_max2.png").read_bytes() == (tmp_path / "warm" / f"i{n}_max2.png").read_bytes()
    assert [p for p in (tmp_path / "cache").rglob("*") if ".tmp." in p.name] == []  # no half-written cache file
