"""The --html page (contract §9), in a real browser: Debian's Chromium driven by Playwright.

Every number the page's script computes is compared with what ``explain --json`` (the Python
views) gives for the same cell; the tests fail on any console error or any request beyond the
page's own file.  They skip, saying why, only where Playwright or Chromium is not installed.
"""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poolcli.jobs import PoolJob
from poolcli.pipeline import Pipeline, apply_stage
from poolcli.teach import explain_convolution, explain_pooling
from poolcli.teach.page import write_page
from poolcli.teach.stage import annotate, explain_at, stage_input
from poolcli.teach.views import one_stage

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).exists()), None)  # fmt: skip
if CHROMIUM is None:
    pytest.skip("no Chromium here (Debian: apt-get install chromium)", allow_module_level=True)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Page:
    def __init__(self, browser, path: Path):
        self.errors, self.requests = [], []
        self.page = browser.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)

    def select(self, *args):
        return self.page.evaluate("a => window.poolcli.select(...a)", list(args))

    def check_clean(self):
        assert self.errors == [], self.errors
        assert [u for u in self.requests if u != self.url] == [], self.requests  # no network, nothing fetched
        self.page.close()


def same(a, b, path="") -> None:
    """Deep equality; floats within 1e-6 relative (the page sums in another order)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(b, (int, float)) and not isinstance(b, bool), (path, a, b)
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


def image(h=37, w=45, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)


PIPELINES = [
    "gaussian sigma=1 | sobel-x | relu | max 2",
    "conv sobel-x,sobel-y boundary=mirror | avg 3 stride=2 padding=1 | lp 2 stride=1",
    "sharpen boundary=wrap stride=2 dilation=2 | min 3 stride=2 ceil_mode=true | adaptive max 4x3 | global avg",
    "gray | box size=3 boundary=constant cval=7 | avg 2 count_include_pad=false padding=1 | tanh",
    "gaussian sigma=4 | global max",  # a 25×25 window: heat maps; global: a summarised window
]


@pytest.mark.parametrize("text", PIPELINES)
def test_every_stage_equals_explain(browser, tmp_path, text):
    img = image(120, 110) if "global max" in text else image()
    pipe = Pipeline.parse(text)
    path = tmp_path / "p.html"
    write_page(pipe, img, str(path))
    page = Page(browser, path)
    rng = np.random.default_rng(1)
    for number in range(1, len(pipe.stages) + 1):
        x_map, colour = stage_input(pipe, img, number)
        out, out_c = apply_stage(pipe.stages[number - 1], x_map, colour)
        cells = {(0, 0), (out.shape[1] - 1, out.shape[0] - 1)}
        cells |= {(int(rng.integers(out.shape[1])), int(rng.integers(out.shape[0]))) for _ in range(3)}
        for x, y in sorted(cells):
            ch = int(rng.integers(out_c))
            want = annotate(explain_at(pipe, number, x_map, colour, (x, y), ch), pipe, number, img.shape[:2])
            same(json.loads(json.dumps(want)), page.select(number - 1, x, y, ch), f"stage {number} ({x},{y}) ch {ch}")
    assert page.select(0, 10_000, 0, 0) is None and page.select(0, 0, 0, 99) is None
    page.check_clean()


def test_a_conv2d_layer_page(browser, tmp_path):
    w = np.random.default_rng(2).standard_normal((6, 3, 3, 3)).astype(np.float32)
    np.savez(tmp_path / "l.npz", weight=w, bias=np.arange(6, dtype=np.float32))
    np.savez(tmp_path / "g.npz", weight=np.random.default_rng(3).standard_normal((4, 3, 5, 5)).astype(np.float32))
    text = (f"conv2d @{tmp_path / 'l.npz'} padding=1 padding_mode=reflect | relu | "
            f"conv2d @{tmp_path / 'g.npz'} groups=2 stride=2 dilation=2 padding=3 padding_mode=circular | max 2")
    pipe = Pipeline.parse(text)
    img = image()
    write_page(pipe, img, str(tmp_path / "p.html"))
    page = Page(browser, tmp_path / "p.html")
    for number, (x, y, ch) in [(1, (0, 0, 5)), (1, (44, 36, 2)), (3, (0, 0, 3)), (3, (10, 9, 1)), (4, (2, 3, 0))]:
        x_map, colour = stage_input(pipe, img, number)
        want = annotate(explain_at(pipe, number, x_map, colour, (x, y), ch), pipe, number, img.shape[:2])
        got = page.select(number - 1, x, y, ch)
        same(json.loads(json.dumps(want)), got, f"stage {number}")
        if want["kind"] == "conv2d":
            assert len(got["partial_sums"]) == len(want["channels"]) and got["bias"] == want["bias"]
    page.check_clean()


def test_single_operation_pages_equal_explain_json(browser, tmp_path, cli, samples):
    """``explain IMAGE -k … --html`` and ``-m … --html``: select() is explain --json, exactly its keys."""
    cases = [(["-k", "sobel", "-b", "nearest"], (3, 4, 0)), (["-k", "gaussian", "--sigma", "1.5", "--stride", "2"], (7, 2, 2)),
             (["-m", "max", "-s", "3", "--stride", "2", "--padding", "1"], (0, 0, 1)),
             (["-m", "avg", "-s", "2x3", "--padding", "1", "--no-count-include-pad"], (5, 9, 2))]  # fmt: skip
    for args, (x, y, c) in cases:
        page_file = tmp_path / "one.html"
        r = cli("explain", samples / "chelsea.png", *args, "--at", f"{x},{y}", "--channel", str(c), "--json",
                "--html", page_file)  # fmt: skip
        assert r.code == 0, r
        page = Page(browser, page_file)
        same(r.json, page.select(0, x, y, c), str(args))
        same(r.json, page.page.evaluate("window.poolcli.selected()"))
        for xx, yy in [(0, 0), (x + 1, y)]:
            r2 = cli("explain", samples / "chelsea.png", *args, "--at", f"{xx},{yy}", "--channel", str(c), "--json")
            same(r2.json, page.select(0, xx, yy, c), f"{args} at {xx},{yy}")
        page.check_clean()


def test_clicks_hovers_and_arrow_keys(browser, tmp_path):
    pipe = Pipeline.parse("sobel | max 2")
    img = image()
    write_page(pipe, img, str(tmp_path / "p.html"))
    page = Page(browser, tmp_path / "p.html")
    maps = page.page.locator("[data-map]")
    assert maps.count() == 1 + 3 + 3  # the input (RGB), then each stage's channels
    target = page.page.locator('img[data-map="1"][data-channel="2"]')
    box = target.bounding_box()
    oh, ow = 18, 22
    cx, cy = 5, 7  # the cell to click: the middle of its pixels on screen
    target.click(position={"x": (cx + 0.5) * box["width"] / ow, "y": (cy + 0.5) * box["height"] / oh})
    got = page.page.evaluate("window.poolcli.selected()")
    assert got["position"] == {"x": cx, "y": cy, "channel": 2}
    x_map, colour = stage_input(pipe, img, 2)
    same(json.loads(json.dumps(annotate(explain_at(pipe, 2, x_map, colour, (cx, cy), 2), pipe, 2, img.shape[:2]))),
         got)  # fmt: skip
    assert "max" in page.page.locator("#explain").inner_text()
    page.page.keyboard.press("ArrowRight")
    page.page.keyboard.press("ArrowDown")
    assert page.page.evaluate("window.poolcli.selected()")["position"] == {"x": cx + 1, "y": cy + 1, "channel": 2}
    first = page.page.locator('img[data-map="0"][data-channel="0"]')
    b0 = first.bounding_box()
    first.hover(position={"x": 2.5 * b0["width"] / 45, "y": 3.5 * b0["height"] / 37})
    assert page.page.evaluate("window.poolcli.selected()")["position"] == {"x": 2, "y": 3, "channel": 0}
    assert page.page.locator(".mark.window").count() >= 1 and page.page.locator(".mark.cell").count() == 1
    page.check_clean()


def test_a_large_image_keeps_a_crop_and_stays_small(browser, tmp_path):
    big = np.random.default_rng(5).integers(0, 256, (3000, 4000, 3)).astype(np.uint8)  # 12 MP of noise
    pipe = one_stage(PoolJob.build("max", "2"))
    write_page(pipe, big, str(tmp_path / "big.html"), at=(1000, 700), single=True)
    size = (tmp_path / "big.html").stat().st_size
    assert size < 10 * 2**20, size
    page = Page(browser, tmp_path / "big.html")
    for x, y in [(1000, 700), (1000 - 255, 700 - 255), (1000 + 255, 700 + 250)]:  # inside the 512×512 crop
        want = explain_pooling(big, pipe.stages[0].spec, (x, y), 1)
        same(json.loads(json.dumps(want)), page.select(0, x, y, 1))
    assert page.select(0, 10, 10, 0) is None and page.select(0, 1999, 1499, 0) is None  # outside: null
    page.check_clean()


def test_run_html_on_the_command_line(cli, samples, tmp_path, browser):
    r = cli("run", "gaussian sigma=2 | sobel-x | relu | max 2", samples / "camera.png", "--html", tmp_path / "r.html")
    assert r.code == 0, r
    assert not list(samples.glob("camera_*"))  # the page, not the outputs
    page = Page(browser, tmp_path / "r.html")
    got = page.select(3, 100, 90, 0)
    src = np.asarray(Image.open(samples / "camera.png"))
    import poolcli

    assert got["output"] == float(poolcli.run(src, "gaussian sigma=2 | sobel-x | relu | max 2")[90, 100])
    assert got["stage"] == {"number": 4, "text": "max 2"}
    page.check_clean()
    r = cli("run", "max 2", samples / "camera.png", "--html", samples / "camera.png")
    assert r.code == 2 and "input" in r.stderr, r


def test_convolution_page_matches_the_numpy_view(browser, tmp_path):
    """The page's single-operation view equals explain_convolution on the image directly."""
    from poolcli.jobs import ConvolveJob

    job = ConvolveJob.build("laplacian", boundary="reflect")
    pipe = one_stage(job)
    img = image()
    write_page(pipe, img, str(tmp_path / "c.html"), single=True)
    page = Page(browser, tmp_path / "c.html")
    for x, y, c in [(0, 0, 0), (44, 36, 2), (20, 1, 1)]:
        same(json.loads(json.dumps(explain_convolution(img, job.spec, (x, y), c))), page.select(0, x, y, c))
    page.check_clean()
