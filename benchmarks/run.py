"""poolcli against its peers, side by side in one run: python benchmarks/run.py [--quick] [--only SECTION ...]

Sections: compute (Python API, no I/O, 4096² RGB), e2e (a 12-MP PNG through the command
line), batch (200 photos of 640×480), startup, memory, png (encoder choice).  Contenders of
a case are run in alternating rounds so drift of this shared machine hits all of them; the
tables give medians and ratios (peer time / poolcli time: above 1 means poolcli is faster).
A missing peer is skipped and named.  The results go to stdout and benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from statistics import median

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
SAMPLES = ROOT / "sample_images"
POOLCLI = (
    [str(Path(sys.executable).with_name("poolcli"))]
    if Path(sys.executable).with_name("poolcli").exists()
    else [sys.executable, "-m", "poolcli"]
)
MAGICK = shutil.which("magick") or ("/usr/bin/convert" if os.path.exists("/usr/bin/convert") else None)
MOGRIFY = shutil.which("mogrify")
VIPS = shutil.which("vips")

REPORT: list[str] = []
SKIPPED: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    REPORT.append(line)


def optional(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        SKIPPED.append(f"{name} (not installed)")
        return None


def rounds(cases: dict, reps: int, warm: int = 1) -> dict[str, float]:
    """Median seconds of each callable, run in alternating rounds after ``warm`` untimed calls."""
    for fn in cases.values():
        for _ in range(warm):
            fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(reps):
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        for name in order:
            t0 = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - t0)
    return {k: median(v) for k, v in times.items()}


def table(title: str, results: dict[str, float], ours: str, target: str | None = None) -> None:
    say(f"\n#### {title}\n")
    say("| contender | median ms | ratio (peer / poolcli) |")
    say("|---|---:|---:|")
    base = results[ours]
    for name, t in sorted(results.items(), key=lambda kv: kv[1]):
        ratio = "—" if name == ours else f"{t / base:.2f}"
        say(f"| {name} | {t * 1e3:,.1f} | {ratio} |")
    if target:
        say(f"\ntarget: {target}")


# --------------------------------------------------------------------------- data


def photo(width: int, height: int, seed: int) -> np.ndarray:
    """A photo-like RGB test image: a sample photograph resized, with mild sensor noise."""
    from PIL import Image

    names = ["chelsea.png", "coffee_rgba.png", "rocket.jpg", "camera.png"]
    im = Image.open(SAMPLES / names[seed % len(names)]).convert("RGB")
    rng = np.random.default_rng(seed)
    w, h = im.size
    cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    im = im.crop((x0, y0, x0 + cw, y0 + ch)).resize((width, height), Image.BICUBIC)
    arr = np.asarray(im).astype(np.float32) + rng.normal(0, 2.5, (height, width, 3)).astype(np.float32)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def ensure_data() -> dict[str, Path]:
    from PIL import Image

    DATA.mkdir(exist_ok=True)
    big = DATA / "photo_12mp.png"
    if not big.exists():
        Image.fromarray(photo(4000, 3000, 0)).save(big)
    small = DATA / "photo_small.png"
    if not small.exists():
        Image.fromarray(photo(640, 480, 5)).save(small)
    folder = DATA / "photos200"
    if not folder.exists() or len(list(folder.glob("*.png"))) != 200:
        folder.mkdir(exist_ok=True)
        for i in range(200):
            Image.fromarray(photo(640, 480, i)).save(folder / f"p{i:03d}.png")
    return {"big": big, "small": small, "folder": folder}


# --------------------------------------------------------------------------- 1. compute


def bench_compute(reps: int) -> None:
    import poolcli

    cv2 = optional("cv2")
    torch = optional("torch")
    ndi = optional("scipy.ndimage")
    skm = optional("skimage.measure")
    if cv2 is not None:
        cv2.setNumThreads(os.cpu_count() or 2)
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 2)
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (4096, 4096, 3), dtype=np.uint8)
    f32 = u8.astype(np.float32)
    gray = np.ascontiguousarray(f32[:, :, 0])
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
    slow = max(2, reps // 2)

    say("\n### 1. Compute only (Python API, no I/O), 4096×4096 RGB\n")
    say("poolcli returns float32 for convolution and avg pooling (its API contract); OpenCV's")
    say("uint8 filters return uint8, so they write a quarter of the bytes.")
    for dtype, img in (("uint8", u8), ("float32", f32)):
        cases = {"poolcli": lambda img=img: poolcli.convolve(img, sharpen)}
        if cv2 is not None:
            cases["OpenCV filter2D"] = lambda img=img: cv2.filter2D(img, -1, sharpen, borderType=cv2.BORDER_REFLECT)
        if torch is not None and dtype == "float32":
            t = torch.from_numpy(f32).permute(2, 0, 1)[None].contiguous()
            w = torch.from_numpy(np.repeat(sharpen[None, None], 3, 0))
            cases["PyTorch conv2d"] = lambda t=t, w=w: torch.nn.functional.conv2d(t, w, padding=1, groups=3)
        table(f"3×3 sharpen, {dtype}", rounds(cases, reps), "poolcli", "≥ 1.0 against OpenCV")
        if ndi is not None:
            t_ndi = rounds({"scipy": lambda img=img: ndi.correlate(img.astype(np.float32), sharpen[:, :, None])}, 1)
            say(f"\nSciPy ndimage.correlate ({dtype}): {t_ndi['scipy'] * 1e3:,.0f} ms")

    cases = {"poolcli": lambda: poolcli.convolve(gray, "sobel")}
    if cv2 is not None:
        cases["OpenCV Sobel+magnitude"] = lambda: cv2.magnitude(
            cv2.Sobel(gray, cv2.CV_32F, 1, 0, borderType=cv2.BORDER_REFLECT),
            cv2.Sobel(gray, cv2.CV_32F, 0, 1, borderType=cv2.BORDER_REFLECT),
        )
    if ndi is not None:
        cases["SciPy sobel+hypot"] = lambda: np.hypot(ndi.sobel(gray, 1), ndi.sobel(gray, 0))
    table("Sobel magnitude, gray float32", rounds(cases, slow), "poolcli", "≥ 1.0 against OpenCV")

    cases = {"poolcli": lambda: poolcli.convolve(u8, "gaussian", sigma=3)}
    if cv2 is not None:
        cases["OpenCV GaussianBlur"] = lambda: cv2.GaussianBlur(u8, (25, 25), 3, borderType=cv2.BORDER_REFLECT)
    table("Gaussian σ=3 (25×25), uint8", rounds(cases, slow), "poolcli", "≥ 1.0 against OpenCV")
    if ndi is not None:
        t_ndi = rounds({"scipy": lambda: ndi.gaussian_filter(u8.astype(np.float32), (3, 3, 0))}, 1)
        say(f"\nSciPy gaussian_filter: {t_ndi['scipy'] * 1e3:,.0f} ms")

    for dtype, img in (("uint8", u8), ("float32", f32)):
        cases = {"poolcli": lambda img=img: poolcli.pool(img, "max", 2)}
        if cv2 is not None:
            cases["OpenCV dilate+slice"] = lambda img=img: cv2.dilate(img, np.ones((2, 2), np.uint8), anchor=(0, 0))[
                ::2, ::2
            ]
        cases["NumPy reshape-max"] = lambda img=img: img.reshape(2048, 2, 2048, 2, 3).max(axis=(1, 3))
        if skm is not None:
            cases["scikit-image block_reduce"] = lambda img=img: skm.block_reduce(img, (2, 2, 1), np.max)
        if torch is not None:
            t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None].contiguous()
            cases["PyTorch max_pool2d"] = lambda t=t: torch.nn.functional.max_pool2d(t, 2)
        table(f"max pool 2, {dtype}", rounds(cases, reps), "poolcli", "≥ 2.0 against the fastest peer")

    for dtype, img in (("uint8", u8), ("float32", f32)):
        cases = {"poolcli": lambda img=img: poolcli.pool(img, "avg", 2)}
        if cv2 is not None:
            cases["OpenCV resize INTER_AREA"] = lambda img=img: cv2.resize(
                img, (2048, 2048), interpolation=cv2.INTER_AREA
            )
        cases["NumPy reshape-mean"] = lambda img=img: img.reshape(2048, 2, 2048, 2, 3).mean(
            axis=(1, 3), dtype=np.float32
        )
        if skm is not None:
            cases["scikit-image block_reduce"] = lambda img=img: skm.block_reduce(img, (2, 2, 1), np.mean)
        if torch is not None:
            t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None].contiguous()
            cases["PyTorch avg_pool2d"] = lambda t=t: torch.nn.functional.avg_pool2d(t, 2)
        table(f"avg pool 2, {dtype}", rounds(cases, reps), "poolcli", "≥ 1.0 against OpenCV resize INTER_AREA")

    for dtype, img in (("uint8", u8), ("float32", f32)):
        cases = {"poolcli": lambda img=img: poolcli.pool(img, "max", 3, stride=2)}
        if torch is not None:
            t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None].contiguous()
            cases["PyTorch max_pool2d"] = lambda t=t: torch.nn.functional.max_pool2d(t, 3, 2)
        if cv2 is not None:
            cases["OpenCV dilate+slice"] = lambda img=img: cv2.dilate(img, np.ones((3, 3), np.uint8))[1:-1:2, 1:-1:2]
        table(f"max pool 3 stride 2, {dtype}", rounds(cases, slow), "poolcli", "≥ 5 against PyTorch")


# --------------------------------------------------------------------------- 2. end to end

OPENCV_SCRIPT = textwrap.dedent(
    """
    import sys, cv2, numpy as np
    cv2.setNumThreads(0 if len(sys.argv) < 5 else int(sys.argv[4]))
    op, src, dst = sys.argv[1:4]
    img = cv2.imread(src, cv2.IMREAD_UNCHANGED)
    if op == "sobel":
        f = img.astype(np.float32)
        mag = cv2.magnitude(cv2.Sobel(f, cv2.CV_32F, 1, 0), cv2.Sobel(f, cv2.CV_32F, 0, 1))
        out = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    elif op == "avg2":
        out = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    else:
        out = cv2.dilate(img, np.ones((2, 2), np.uint8), anchor=(0, 0))[::2, ::2]
    cv2.imwrite(dst, out)
    """
)

OPENCV_LOOP = textwrap.dedent(
    """
    import os, sys, cv2, numpy as np
    cv2.setNumThreads(1)
    op, src, dst = sys.argv[1:4]
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        img = cv2.imread(os.path.join(src, name), cv2.IMREAD_UNCHANGED)
        if op == "sobel":
            f = img.astype(np.float32)
            mag = cv2.magnitude(cv2.Sobel(f, cv2.CV_32F, 1, 0), cv2.Sobel(f, cv2.CV_32F, 0, 1))
            out = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        else:
            out = cv2.dilate(img, np.ones((2, 2), np.uint8), anchor=(0, 0))[::2, ::2]
        cv2.imwrite(os.path.join(dst, name), out)
    """
)


def run(cmd: list[str] | str, **kw) -> None:
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, shell=isinstance(cmd, str), **kw
    )


def bench_e2e(data, reps: int, tmp: Path) -> None:
    big = data["big"]
    (tmp / "cv.py").write_text(OPENCV_SCRIPT)
    (tmp / "sobel.mat").write_text("3 3 1 0\n-1 0 1\n-2 0 2\n-1 0 1\n")
    say("\n### 2. End to end: one 12-MP PNG photo (4000×3000 RGB) → result → PNG\n")
    have_cv = optional("cv2") is not None
    for op in ("sobel", "max2", "avg2"):
        if op == "sobel":
            cases = {
                "poolcli": lambda: run(POOLCLI + ["convolve", str(big), "-k", "sobel", "-q", "-o", str(tmp / "p.png")])
            }
        elif op == "avg2":
            cases = {
                "poolcli": lambda: run(
                    POOLCLI + ["pool", str(big), "-m", "avg", "-s", "2", "-q", "-o", str(tmp / "p.png")]
                )
            }
        else:
            cases = {
                "poolcli": lambda: run(
                    POOLCLI + ["pool", str(big), "-m", "max", "-s", "2", "-q", "-o", str(tmp / "p.png")]
                )
            }
        if have_cv:
            cases["OpenCV script"] = lambda op=op: run(
                [sys.executable, str(tmp / "cv.py"), op, str(big), str(tmp / "c.png")]
            )
        if VIPS:
            if op == "sobel":
                cases["vips conv (Sobel x only)"] = lambda: run(
                    [VIPS, "conv", str(big), str(tmp / "v.png"), str(tmp / "sobel.mat")]
                )
            elif op == "avg2":
                pass  # the max-pool table already has vips shrink, which averages
            else:
                cases["vips shrink 2 (average)"] = lambda: run([VIPS, "shrink", str(big), str(tmp / "v.png"), "2", "2"])
        else:
            SKIPPED.append("vips command (apt-get install libvips-tools)")
        if MAGICK:
            if op == "sobel":
                cases["ImageMagick convert -morphology Sobel"] = lambda: run(
                    [
                        MAGICK,
                        str(big),
                        "-define",
                        "convolve:scale=50%!",
                        "-bias",
                        "50%",
                        "-morphology",
                        "Convolve",
                        "Sobel",
                        str(tmp / "m.png"),
                    ]
                )
            elif op == "max2":
                cases["ImageMagick convert -scale 50%"] = lambda: run(
                    [MAGICK, str(big), "-scale", "50%", str(tmp / "m.png")]
                )
        else:
            SKIPPED.append("ImageMagick (apt-get install imagemagick)")
        title = {"sobel": "Sobel edge map", "max2": "max pool 2", "avg2": "avg pool 2 (OpenCV: INTER_AREA)"}[op]
        table(f"12 MP {title}", rounds(cases, reps), "poolcli", "poolcli's wall time ≤ the OpenCV script's")


# --------------------------------------------------------------------------- 3. batch


def bench_batch(data, reps: int, tmp: Path) -> None:
    folder = data["folder"]
    (tmp / "loop.py").write_text(OPENCV_LOOP)
    say("\n### 3. Batch: 200 photos of 640×480 PNG\n")
    for op in ("max2", "sobel"):
        out = tmp / "out"

        def fresh(cmd):
            def go():
                shutil.rmtree(out, ignore_errors=True)
                run(cmd)

            return go

        if op == "max2":
            cases = {
                "poolcli --jobs 2": fresh(POOLCLI + ["pool", str(folder), "-m", "max", "-s", "2", "-q", "-o", f"{out}/"])
            }
        else:
            cases = {
                "poolcli --jobs 2": fresh(POOLCLI + ["convolve", str(folder), "-k", "sobel", "-q", "-o", f"{out}/"])
            }
        if optional("cv2") is not None:
            cases["OpenCV loop, 1 process"] = fresh(
                [sys.executable, str(tmp / "loop.py"), "sobel" if op == "sobel" else "max", str(folder), str(out)]
            )
        if op == "max2":
            if MOGRIFY:

                def mog():
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    run([MOGRIFY, "-path", str(out), "-scale", "50%", *sorted(str(p) for p in folder.glob("*.png"))])

                cases["mogrify -scale 50%"] = mog
            if VIPS:
                cases["shell loop of vips shrink"] = fresh(
                    f'mkdir -p {out} && for f in {folder}/*.png; do {VIPS} shrink "$f" {out}/$(basename "$f") 2 2; done'
                )
        table(f"200 photos, {'max pool 2' if op == 'max2' else 'Sobel'}", rounds(cases, reps, warm=1), "poolcli --jobs 2",
              "≥ 2.0 against the OpenCV loop; faster than mogrify and the vips loop")  # fmt: skip


# --------------------------------------------------------------------------- 6. pipelines

PIPELINE = "gaussian sigma=2 | sobel | relu | max 2"
OPENCV_CHAIN = textwrap.dedent(
    """
    import os, sys, cv2, numpy as np
    cv2.setNumThreads(0 if sys.argv[1] == "one" else 1)

    def chain(img):  # the same four steps, float32 throughout, as poolcli run computes them
        f = cv2.GaussianBlur(img.astype(np.float32), (17, 17), 2, borderType=cv2.BORDER_REFLECT)
        mag = cv2.magnitude(cv2.Sobel(f, cv2.CV_32F, 1, 0, borderType=cv2.BORDER_REFLECT),
                            cv2.Sobel(f, cv2.CV_32F, 0, 1, borderType=cv2.BORDER_REFLECT))
        act = np.maximum(mag, 0)
        pooled = cv2.dilate(act, np.ones((2, 2), np.uint8), anchor=(0, 0))[: act.shape[0] // 2 * 2 : 2,
                                                                          : act.shape[1] // 2 * 2 : 2]
        return cv2.normalize(pooled, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)

    if sys.argv[1] == "one":
        cv2.imwrite(sys.argv[3], chain(cv2.imread(sys.argv[2], cv2.IMREAD_UNCHANGED)))
    else:
        os.makedirs(sys.argv[3], exist_ok=True)
        for name in sorted(os.listdir(sys.argv[2])):
            cv2.imwrite(os.path.join(sys.argv[3], name), chain(cv2.imread(os.path.join(sys.argv[2], name))))
    """
)


def bench_pipeline(data, reps: int, tmp: Path) -> None:
    """`poolcli run` against the same steps as shell pipes between poolcli commands, and
    against an OpenCV script doing the chain in float32."""
    (tmp / "chain.py").write_text(OPENCV_CHAIN)
    big, folder, out = data["big"], data["folder"], tmp / "out"
    cli = " ".join(POOLCLI)
    say(f"\n### 6. Pipelines: `{PIPELINE}`\n")
    cases = {
        "poolcli run": lambda: run(POOLCLI + ["run", PIPELINE, str(big), "-q", "-o", str(tmp / "r.png")]),
        "poolcli convolve → convolve → pool, shell pipes (8-bit PNG between)": lambda: run(
            f"{cli} convolve {big} -k gaussian --sigma 2 -q -o - | {cli} convolve -k sobel -q -o - "
            f"| {cli} pool -m max -s 2 -q -o {tmp / 'p.png'}"
        ),
    }
    if optional("cv2") is not None:
        cases["OpenCV script, float32 chain"] = lambda: run([sys.executable, str(tmp / "chain.py"), "one", str(big),
                                                             str(tmp / "c.png")])  # fmt: skip
    table("12-MP PNG → 4-stage pipeline → PNG, whole command", rounds(cases, reps), "poolcli run",
          "≥ 2.0 against the shell pipes, ≥ 1.0 against the OpenCV script")  # fmt: skip

    def fresh(cmd):
        def go():
            shutil.rmtree(out, ignore_errors=True)
            run(cmd)

        return go

    cases = {
        "poolcli run --jobs 2": fresh(POOLCLI + ["run", PIPELINE, str(folder), "-q", "-o", f"{out}/", "--jobs", "2"])
    }
    if optional("cv2") is not None:
        cases["OpenCV loop, 1 process"] = fresh([sys.executable, str(tmp / "chain.py"), "many", str(folder), str(out)])
    table("200 photos of 640×480 → 4-stage pipeline", rounds(cases, reps, warm=1), "poolcli run --jobs 2",
          "≥ 2.0 against the OpenCV loop")  # fmt: skip


# --------------------------------------------------------------------------- 7. Dask


def bench_dask(data, reps: int, tmp: Path) -> None:
    """The local pool against the Dask executor: an in-process cluster, and a scheduler with two
    single-threaded worker processes on loopback (the shape of a real cluster, on one machine)."""
    if optional("distributed") is None:
        return
    import json

    folder, out = data["folder"], tmp / "out"
    dask = str(Path(sys.executable).with_name("dask"))
    info = tmp / "scheduler.json"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(info)], **quiet)]  # fmt: skip
    try:
        while not info.exists():
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--host",
                                           "127.0.0.1", "--no-dashboard"], **quiet))  # fmt: skip
        from distributed import Client

        with Client(address) as client:
            client.wait_for_workers(2)
        say("\n### 7. Dask: 200 photos of 640×480, the local pool against the Dask executor\n")
        for name, command in (("max pool 2", ["pool", "-m", "max", "-s", "2"]),
                              ("run 'blur | relu | max 2'", ["run", "blur | relu | max 2"])):  # fmt: skip

            def go(extra):
                def once():
                    shutil.rmtree(out, ignore_errors=True)
                    run(POOLCLI + command + [str(folder), "-q", "-o", f"{out}/", "--jobs", "2"] + extra)

                return once

            res = rounds({"local pool, --jobs 2": go([]), "Dask, in-process cluster": go(["--executor", "dask"]),
                          "Dask, scheduler + 2 workers": go(["--executor", "dask", "--scheduler", address])},
                         reps, warm=1)  # fmt: skip
            table(f"200 photos, {name}", res, "local pool, --jobs 2", "the Dask paths within 1.5× of the local pool")
            base = res["local pool, --jobs 2"]
            for k, t in res.items():
                if k != "local pool, --jobs 2":
                    say(f"- {k}: {(t - base) / 200 * 1e3:+.2f} ms per file against the local pool")
    finally:
        for p in procs:
            p.kill()
            p.wait()


# --------------------------------------------------------------------------- 8. a busy neighbour, 9. first run


def bench_busy(reps: int) -> None:
    """Compute with one other process spinning on a core, against the quiet machine, and
    against poolcli's own one-thread time (the parallel loops must never be slower than it)."""
    import numba

    import poolcli

    cv2 = optional("cv2")
    rng = np.random.default_rng(0)
    gray = (rng.random((2048, 2048)) * 255).astype(np.float32)
    rgb = (rng.random((2048, 2048, 3)) * 255).astype(np.uint8)
    cases = {
        "Sobel, 2048² gray float32": (lambda: poolcli.convolve(gray, "sobel"),
                                       lambda: cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0),
                                                             cv2.Sobel(gray, cv2.CV_32F, 0, 1))),
        "3×3 sharpen, 2048² RGB uint8": (lambda: poolcli.convolve(rgb, "sharpen"),
                                          lambda: cv2.filter2D(rgb, cv2.CV_32F, np.array([[0, -1, 0], [-1, 5, -1],
                                                                                          [0, -1, 0]], np.float32))),
        "max pool 2, 2048² RGB uint8": (lambda: poolcli.pool(rgb, "max", 2),
                                         lambda: cv2.dilate(rgb, np.ones((2, 2), np.uint8), anchor=(0, 0))[::2, ::2]),
    }  # fmt: skip
    say("\n### 8. A busy neighbour: one other process spinning on one of the cores\n")
    say("| case | poolcli quiet ms | poolcli busy ms | poolcli one thread ms | OpenCV quiet ms | OpenCV busy ms "
        "| ratio quiet | ratio busy |")  # fmt: skip
    say("|---|---:|---:|---:|---:|---:|---:|---:|")

    def alone(cases_: dict) -> dict:
        # each library measured in rounds of its own: OpenCV's pool threads spin-wait for a while
        # after a call, and poolcli's threads would pay for that too (or the other way round)
        return {k: rounds({k: f}, reps)[k] for k, f in cases_.items()}

    for name, (ours, theirs) in cases.items():
        contenders = {"poolcli": ours, **({"OpenCV": theirs} if cv2 else {})}
        quiet = alone(contenders)
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            busy = alone(contenders)
        finally:
            hog.kill()
            hog.wait()
        before = numba.get_num_threads()
        numba.set_num_threads(1)
        one = rounds({"poolcli": ours}, reps)["poolcli"]
        numba.set_num_threads(before)
        q, b = quiet["poolcli"], busy["poolcli"]
        cq, cb = quiet.get("OpenCV", float("nan")), busy.get("OpenCV", float("nan"))
        say(f"| {name} | {q * 1e3:.1f} | {b * 1e3:.1f} | {one * 1e3:.1f} | {cq * 1e3:.1f} | {cb * 1e3:.1f} "
            f"| {cq / q:.2f} | {cb / b:.2f} |")  # fmt: skip


def bench_first_run(tmp: Path) -> None:
    """Cold start (#26): each command on an empty Numba cache (a new folder per run), medians of
    3, on the quiet machine and with one other process spinning on a core; the warm 0.3-MP run
    and `poolcli warmup` (once each way: minutes)."""
    say("\n### 9. First run on a fresh install (empty Numba cache per run, medians of 3)\n")
    say("| command | quiet s | busy neighbour s | target s |")
    say("|---|---:|---:|---:|")
    from PIL import Image

    small = tmp / "small.png"
    Image.fromarray(photo(640, 480, 9)).save(small)
    layer = tmp / "layer.npz"
    subprocess.run(POOLCLI + ["kernels", "--layer", "random", "-o", str(layer)], check=True, capture_output=True)
    commands = [
        ("poolcli pool sample_images/ -m max -s 2 -o out/", ["pool", str(SAMPLES), "-m", "max", "-s", "2", "-o", f"{tmp / 'o'}/", "-q"], 3),
        ("poolcli convolve sample_images/chelsea.png -k sobel -o c.png", ["convolve", str(SAMPLES / "chelsea.png"), "-k", "sobel", "-o", str(tmp / "c.png"), "-q"], 3),
        ("poolcli run 'conv2d @layer.npz padding=1 \\| relu \\| max 2' chelsea.png", ["run", f"conv2d @{layer} padding=1 | relu | max 2", str(SAMPLES / "chelsea.png"), "-o", f"{tmp / 'l'}/", "-q"], 3),
        ("poolcli pool small.png -m avg -s 2 (the 8-bit integer loop)", ["pool", str(small), "-m", "avg", "-s", "2", "-o", str(tmp / "a.png"), "-q"], 3),
        ("a warm poolcli pool small.png -m max -s 2 (0.3 MP)", ["pool", str(small), "-m", "max", "-s", "2", "-o", str(tmp / "s.png"), "-q"], 0.3),
        ("poolcli warmup", ["warmup", "-q"], 45),
    ]  # fmt: skip

    def timed(args: list[str], warm: bool) -> float:
        cache = tmp / ("warm-cache" if warm else f"cache-{time.perf_counter_ns()}")
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
        if warm:  # the warm case: its cache filled once, then timed
            subprocess.run(POOLCLI + args, env=env, check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run(POOLCLI + args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.perf_counter() - t0
        if not warm:
            shutil.rmtree(cache, ignore_errors=True)
        return took

    for label, args, target in commands:
        warm, n = label.startswith("a warm"), 1 if args[0] == "warmup" else 3
        quiet = median([timed(args, warm) for _ in range(n)])
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            busy = median([timed(args, warm) for _ in range(n)])
        finally:
            hog.kill()
            hog.wait()
        say(f"| `{label}` | {quiet:.2f} | {busy:.2f} | ≤ {target:g} |")


# --------------------------------------------------------------------------- 4. start-up and 5. memory


def bench_startup(data, reps: int, tmp: Path) -> None:
    say("\n### 4. Start-up\n")
    run(
        POOLCLI + ["pool", str(data["small"]), "-m", "max", "-s", "2", "-q", "-o", str(tmp / "s.png")]
    )  # warm the cache
    res = rounds(
        {
            "poolcli --help": lambda: run(POOLCLI + ["--help"]),
            "poolcli pool (0.3 MP, warm cache)": lambda: run(
                POOLCLI + ["pool", str(data["small"]), "-m", "max", "-s", "2", "-q", "-o", str(tmp / "s.png")]
            ),
            "poolcli convolve -k sobel (0.3 MP, warm cache)": lambda: run(
                POOLCLI + ["convolve", str(data["small"]), "-k", "sobel", "-q", "-o", str(tmp / "s.png")]
            ),
        },
        reps * 2,
    )
    say("| command | median ms | target |")
    say("|---|---:|---|")
    for name, t in res.items():
        target = "≤ 300 ms" if "help" in name else "≤ 1,000 ms"
        say(f"| `{name}` | {t * 1e3:,.0f} | {target} |")


def peak_rss(cmd: list[str]) -> float:
    """Max RSS in MB of one command, measured in a fresh child so nothing else counts."""
    probe = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024


def bench_memory(data, tmp: Path) -> None:
    say("\n### 5. Peak memory, 12-MP RGB convolve → PNG\n")
    say("| command | max RSS MB | target |")
    say("|---|---:|---|")
    for k in ("sobel", "gaussian"):
        mb = peak_rss(POOLCLI + ["convolve", str(data["big"]), "-k", k, "-q", "-o", str(tmp / "mem.png")])
        say(f"| `poolcli convolve photo_12mp.png -k {k}` | {mb:,.0f} | ≤ 400 |")


# --------------------------------------------------------------------------- images larger than memory


def big_png(name: str, width: int, height: int) -> Path:
    """A synthetic photo (benchmarks/synthetic.py) of width × height, made once in DATA."""
    path = DATA / name
    if not path.exists():
        DATA.mkdir(exist_ok=True)
        run([sys.executable, str(HERE / "synthetic.py"), str(path), str(width), str(height)])
    return path


STREAM_OPS = {
    "Sobel": (["convolve", "-k", "sobel"], ["sobel"]),
    "max pool 2": (["pool", "-m", "max", "-s", "2"], ["shrink", None, None, "2", "2"]),
}


def stream_cases(src: Path, tmp: Path, op: str, whole: bool) -> dict:
    ours, theirs = STREAM_OPS[op]
    cmd = POOLCLI + [ours[0], str(src), *ours[1:], "-q", "-o", str(tmp / "s.png")]
    cases = {"poolcli (streamed)": lambda: run(cmd)}
    if whole:
        cases["poolcli --no-stream (whole image)"] = lambda: run(cmd + ["--no-stream", "--max-pixels", "0"])
    if VIPS:
        vips = [VIPS, theirs[0], str(src), str(tmp / "v.png"), *[a for a in theirs[3:]]]
        label = "vips sobel" if theirs[0] == "sobel" else "vips shrink 2 2 (average)"
        cases[label] = lambda: run(vips)
    else:
        SKIPPED.append("vips command (apt-get install libvips-tools)")
    return cases


def bench_stream(reps: int, tmp: Path) -> None:
    """108-MP PNG → Sobel / max pool 2 → PNG: streamed against the whole-image path and vips."""
    src = big_png("synthetic_108mp.png", 12000, 9000)
    say("\n### 10. Images larger than memory: a 108-MP PNG (12000×9000 RGB, benchmarks/synthetic.py)\n")
    say("Wall time: medians of alternating rounds; memory: peak RSS of one more run of each.")
    for op in STREAM_OPS:
        cases = stream_cases(src, tmp, op, whole=True)
        times = rounds(cases, reps, warm=0)
        say(f"\n#### 108 MP {op} → PNG\n")
        say("| contender | median s | MP/s | peak RSS MB | time ratio (peer / streamed) |")
        say("|---|---:|---:|---:|---:|")
        base = times["poolcli (streamed)"]
        for name, fn in cases.items():
            mb = peak_rss_of(fn)
            ratio = "—" if name == "poolcli (streamed)" else f"{times[name] / base:.2f}"
            say(f"| {name} | {times[name]:,.2f} | {108 / times[name]:,.0f} | {mb:,.0f} | {ratio} |")
    say(
        "\ntargets: streamed peak RSS ≤ 300 MB; wall time ≤ 1.1× the whole-image path; faster than vips at no "
        "more than 4× its memory"
    )
    say("\n#### The same on a busy machine (one other process spinning on a core) and on a first run\n")
    say("| operation | streamed s | whole image s | ratio (whole / streamed) |")
    say("|---|---:|---:|---:|")
    for op in STREAM_OPS:
        cases = {k: v for k, v in stream_cases(src, tmp, op, whole=True).items() if k.startswith("poolcli")}
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            busy = rounds(cases, reps, warm=0)
        finally:
            hog.kill()
            hog.wait()
        s_, w_ = busy["poolcli (streamed)"], busy["poolcli --no-stream (whole image)"]
        say(f"| {op}, busy neighbour | {s_:,.2f} | {w_:,.2f} | {w_ / s_:.2f} |")
        first = {}
        for name, fn in cases.items():  # one run each on an empty Numba cache
            cache = tmp / "numba-cache"
            shutil.rmtree(cache, ignore_errors=True)
            os.environ["NUMBA_CACHE_DIR"] = str(cache)
            try:
                t0 = time.perf_counter()
                fn()
                first[name] = time.perf_counter() - t0
            finally:
                del os.environ["NUMBA_CACHE_DIR"]
        s_, w_ = first["poolcli (streamed)"], first["poolcli --no-stream (whole image)"]
        say(f"| {op}, first run (empty Numba cache) | {s_:,.2f} | {w_:,.2f} | {w_ / s_:.2f} |")


def bench_giga(tmp: Path) -> None:
    """One gigapixel PNG through Sobel and max pool 2: one run each, beside vips."""
    src = big_png("synthetic_1gp.png", 40000, 25000)
    size = src.stat().st_size / 2**20
    say(f"\n### 11. One gigapixel: a 40000×25000 RGB PNG ({size:,.0f} MB on disk), one run each\n")
    say("| operation | contender | s | MP/s | peak RSS MB |")
    say("|---|---|---:|---:|---:|")
    for op in STREAM_OPS:
        for name, fn in stream_cases(src, tmp, op, whole=False).items():
            t0 = time.perf_counter()
            mb = peak_rss_of(fn)
            t = time.perf_counter() - t0
            say(f"| {op} | {name} | {t:,.1f} | {1000 / t:,.0f} | {mb:,.0f} |")
    say("\ntarget: poolcli completes with peak RSS ≤ 500 MB")


def peak_rss_of(fn) -> float:
    """Peak RSS in MB of the command a :func:`run` lambda runs (captured, then measured)."""
    seen = []
    global run
    real = run
    run = lambda cmd, **kw: seen.append(cmd)  # noqa: E731
    try:
        fn()
    finally:
        run = real
    return peak_rss(seen[0])


# --------------------------------------------------------------------------- PNG encoders


def bench_png(data, reps: int) -> None:
    from PIL import Image

    from poolcli import io as pio

    arr = np.asarray(Image.open(data["big"]))
    say("\n### PNG encoding of the 12-MP photo (what `save` costs)\n")
    import io

    sizes = {}

    def pil(level):
        def go():
            b = io.BytesIO()
            Image.fromarray(arr).save(b, "PNG", compress_level=level)
            sizes[f"Pillow level {level}"] = len(b.getvalue())

        return go

    def ours(level):
        def go():
            sizes[f"poolcli encoder level {level}"] = len(pio.encode(arr[:, :, :3], False, "png", png_level=level))

        return go

    cases = {f"Pillow level {lv}": pil(lv) for lv in (6, 1)}
    cases.update({f"poolcli encoder level {lv}": ours(lv) for lv in (1, 2, 6)})
    cv2 = optional("cv2")
    if cv2 is not None:

        def cvenc():
            ok, buf = cv2.imencode(".png", arr[:, :, ::-1])
            sizes["OpenCV imencode (level 1)"] = len(buf)

        cases["OpenCV imencode (level 1)"] = cvenc
    res = rounds(cases, reps)
    base = sizes["Pillow level 6"]
    say("| encoder | median ms | size MB | size vs Pillow default |")
    say("|---|---:|---:|---:|")
    for name, t in sorted(res.items(), key=lambda kv: kv[1]):
        say(f"| {name} | {t * 1e3:,.0f} | {sizes[name] / 1e6:.2f} | {sizes[name] / base:.2f} |")


# --------------------------------------------------------------------------- main


# --------------------------------------------------------------------------- 12. conv2d, and integer results


def bench_conv2d(reps: int) -> None:
    """poolcli.conv2d against torch.nn.functional.conv2d (oneDNN) on the same threads, the
    two-layer forward pass, and 8-bit average pooling written as uint8 (dtype=) against OpenCV."""
    import poolcli

    torch = optional("torch")
    cv2 = optional("cv2")
    threads = os.cpu_count() or 2
    if torch is not None:
        torch.set_num_threads(threads)
    if cv2 is not None:
        cv2.setNumThreads(threads)
    rng = np.random.default_rng(0)
    busy: list = []  # the same cases again with one other process spinning on a core
    say("\n### 12. conv2d (a CNN layer across channels) against PyTorch, same threads\n")
    for cin, cout, k, side, target in ((3, 8, 3, 1024, "≥ 1.5"), (3, 16, 3, 1024, "≥ 1.5"), (3, 16, 5, 1024, "≥ 1.2"),
                                       (3, 64, 3, 512, "≥ 1.0"), (16, 32, 3, 512, "≥ 1.0")):  # fmt: skip
        x = (rng.random((1, cin, side, side)) * 255).astype(np.float32)
        w = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
        b = np.zeros(cout, np.float32)
        cases = {"poolcli": lambda x=x, w=w, b=b, k=k: poolcli.conv2d(x, w, b, padding=k // 2)}
        if torch is not None:
            tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
            cases["PyTorch F.conv2d"] = lambda tx=tx, tw=tw, tb=tb, k=k: torch.nn.functional.conv2d(tx, tw, tb,
                                                                                               padding=k // 2)
        else:
            SKIPPED.append("PyTorch (pip install torch)")
        table(f"{cin}→{cout} {k}×{k} at {side}²", rounds(cases, reps), "poolcli", f"{target} against PyTorch")
        busy.append((f"{cin}→{cout} {k}×{k} at {side}²", cases))
    say("\n#### The same with a busy neighbour (one other process spinning on a core)\n")
    say("| case | poolcli ms | PyTorch ms | ratio (PyTorch / poolcli) |")
    say("|---|---:|---:|---:|")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        for title, cases in busy:
            got = rounds(cases, reps)
            theirs = got.get("PyTorch F.conv2d", float("nan"))
            say(f"| {title} | {got['poolcli'] * 1e3:.1f} | {theirs * 1e3:.1f} | {theirs / got['poolcli']:.2f} |")
    finally:
        hog.kill()
        hog.wait()
    img = (rng.random((1, 3, 1024, 1024)) * 255).astype(np.float32)
    w1, w2 = rng.standard_normal((16, 3, 3, 3)).astype(np.float32), rng.standard_normal((32, 16, 3, 3)).astype(np.float32)

    def ours():
        h = poolcli.pool(np.maximum(poolcli.conv2d(img, w1, padding=1), 0), "max", 2, layout="nchw")
        return poolcli.pool(np.maximum(poolcli.conv2d(h, w2, padding=1), 0), "max", 2, layout="nchw")

    cases = {"poolcli": ours}
    if torch is not None:
        F, t_img, t1, t2 = torch.nn.functional, torch.from_numpy(img), torch.from_numpy(w1), torch.from_numpy(w2)
        cases["PyTorch"] = lambda: F.max_pool2d(F.relu(F.conv2d(F.max_pool2d(F.relu(F.conv2d(t_img, t1, padding=1)),
                                                                           2), t2, padding=1)), 2)  # fmt: skip
    table("two layers at 1024²: conv 3→16 | relu | max 2 | conv 16→32 | relu | max 2", rounds(cases, reps),
          "poolcli", "≥ 1.0 against PyTorch")  # fmt: skip


def bench_thumbs(reps: int) -> None:
    """8-bit 2×2 average pooling to uint8 (the integer loop) against OpenCV's INTER_AREA, quiet
    and with one other process spinning on a core (#23)."""
    import poolcli

    cv2 = optional("cv2")
    rng = np.random.default_rng(0)
    say("\n### 14. 8-bit thumbnails: avg pool 2 → uint8 against OpenCV INTER_AREA\n")
    for side in (2048, 4096):
        u8 = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        cases = {"poolcli pool avg 2, dtype=uint8": lambda u8=u8: poolcli.pool(u8, "avg", 2, dtype=np.uint8)}
        if cv2 is not None:
            cases["OpenCV resize INTER_AREA"] = lambda u8=u8, side=side: cv2.resize(u8, (side // 2, side // 2),
                                                                                   interpolation=cv2.INTER_AREA)
        table(f"8-bit avg pool 2 → uint8 at {side}²", rounds(cases, reps), "poolcli pool avg 2, dtype=uint8",
              "≥ 1.0 against OpenCV")  # fmt: skip
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            table(f"the same at {side}², busy neighbour", rounds(cases, reps), "poolcli pool avg 2, dtype=uint8")
        finally:
            hog.kill()
            hog.wait()


def bench_side(reps: int) -> None:
    """A learner's notebook: poolcli alternating with cv2.filter2D in a process that imported
    OpenCV and PyTorch (the intermittent slowdown of issue #23), 2048² RGB uint8 and float32."""
    import poolcli

    cv2, torch = optional("cv2"), optional("torch")
    if cv2 is None or torch is None:
        SKIPPED.append("the side-by-side harness (needs OpenCV and PyTorch)")
        return
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
    f32 = u8.astype(np.float32)
    say("\n### 13. Beside OpenCV and PyTorch in one process (sharpen, mirror, 2048² RGB)\n")
    for name, img in (("uint8", u8), ("float32", f32)):
        cases = {"poolcli": lambda img=img: poolcli.convolve(img, "sharpen", boundary="mirror"),
                 "OpenCV filter2D": lambda img=img: cv2.filter2D(img, -1, np.array([[0, -1, 0], [-1, 5, -1],
                                                                                    [0, -1, 0]], np.float32))}  # fmt: skip
        got = {k: [] for k in cases}
        for _ in range(9):  # nine measurements, as the issue's; each the median of its rounds
            for k, v in rounds(cases, reps).items():
                got[k].append(v)
        say(f"\n#### {name}: nine runs of {reps} rounds each (ms)\n")
        for k, v in got.items():
            say(f"- {k}: " + ", ".join(f"{t * 1e3:.1f}" for t in v) + f" (median {median(v) * 1e3:.1f})")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__}", f"Numba {numba.__version__}"]
    for mod in ("cv2", "scipy", "skimage", "torch", "PIL"):
        try:
            m = __import__(mod)
            versions.append(f"{mod} {m.__version__}")
        except ImportError:
            pass
    for cmd, flag in ((VIPS, "--version"), (MAGICK, "-version")):
        if cmd:
            first = subprocess.run([cmd, flag], capture_output=True, text=True).stdout.splitlines()[0]
            versions.append(first.strip())
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; " + "; ".join(versions)


SECTIONS = [
    "compute",
    "e2e",
    "batch",
    "startup",
    "memory",
    "png",
    "pipeline",
    "dask",
    "busy",
    "firstrun",
    "thumbs",
    "stream",
    "giga",
    "conv2d",
    "side",
]
ANALYSIS = "## Analysis"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--only", nargs="*", default=SECTIONS, choices=SECTIONS)
    ap.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md")
    ap.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)  # one section, in a child
    args = ap.parse_args()
    reps = 3 if args.quick else 7
    if args.section:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            data = ensure_data()
            {
                "compute": lambda: bench_compute(reps),
                "e2e": lambda: bench_e2e(data, max(3, reps // 2), tmp),
                "batch": lambda: bench_batch(data, 3, tmp),
                "startup": lambda: bench_startup(data, reps, tmp),
                "memory": lambda: bench_memory(data, tmp),
                "png": lambda: bench_png(data, 3),
                "pipeline": lambda: bench_pipeline(data, max(3, reps // 2), tmp),
                "dask": lambda: bench_dask(data, 3, tmp),
                "busy": lambda: bench_busy(reps),
                "firstrun": lambda: bench_first_run(tmp),
                "stream": lambda: bench_stream(3, tmp),
                "giga": lambda: bench_giga(tmp),
                "conv2d": lambda: bench_conv2d(reps),
                "side": lambda: bench_side(reps),
                "thumbs": lambda: bench_thumbs(max(reps, 21)),
            }[args.section]()
        for item in sorted(set(SKIPPED)):
            print(f"SKIPPED: {item}", flush=True)
        return
    subprocess.run(POOLCLI + ["warmup", "-q"], check=True)
    ensure_data()
    say("# poolcli benchmark results\n")
    say(f"Machine: {machine()}.  ")
    say(f"Run: `python benchmarks/run.py{' --quick' if args.quick else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())};"
        f" {reps} alternating rounds per case (3 for the batch, fewer for the slowest), medians."
        " Each section runs in a fresh process, so threads a peer leaves spinning cannot slow the next.")  # fmt: skip
    for section in args.only:
        cmd = [sys.executable, __file__, "--section", section] + (["--quick"] if args.quick else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("SKIPPED: "):
                SKIPPED.append(line[len("SKIPPED: ") :])
            else:
                say(line)
        if proc.returncode != 0:
            say(
                f"\n(section {section} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})"
            )
    if SKIPPED:
        say("\nSkipped peers: " + ", ".join(sorted(set(SKIPPED))))
    if not args.no_write:
        # the hand-written analysis at the end of RESULTS.md survives a re-run
        old = (HERE / "RESULTS.md").read_text() if (HERE / "RESULTS.md").exists() else ""
        analysis = old[old.index(ANALYSIS) :] if ANALYSIS in old else ""
        (HERE / "RESULTS.md").write_text("\n".join(REPORT) + "\n\n" + analysis)


if __name__ == "__main__":
    main()
