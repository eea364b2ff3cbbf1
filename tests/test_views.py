"""The teaching views of a layer (contract §9): --describe's shapes, receptive fields and jumps,
explain of any pipeline stage, and the --sweep animation, each checked against the API."""

import json

import numpy as np
import pytest
from PIL import Image

import poolcli
from poolcli.pipeline import Pipeline, apply_stage
from poolcli.teach.shapes import describe, field_on_input
from poolcli.teach.stage import explain_at, stage_input
from poolcli.teach.sweep import sweep_frames, write_sweep


def test_describe_the_hand_worked_case():
    stages = describe(Pipeline.parse("sobel | max 2 | sobel | max 3 stride=2"), (96, 128), 3)
    assert [s["output"] for s in stages] == [[96, 128, 3], [48, 64, 3], [48, 64, 3], [23, 31, 3]]
    assert [s["receptive_field"] for s in stages] == [[3, 3], [4, 4], [8, 8], [12, 12]]
    assert [s["jump"] for s in stages] == [[1, 1], [2, 2], [2, 2], [4, 4]]
    assert all(s["params"] == 0 for s in stages)


def test_describe_sizes_are_the_pipelines_own():
    """Every stage's described size is the size the pipeline gives, for odd shapes and options."""
    text = ("conv sobel-x,sobel-y boundary=valid | relu | avg 3 padding=1 stride=2 | max 3 stride=2 dilation=2 "
            "ceil_mode=true | gaussian sigma=1 stride=2 | adaptive max 5x4")
    pipe = Pipeline.parse(text)
    img = np.random.default_rng(0).random((97, 131, 3), dtype=np.float32)
    x, c = img, 3
    for st, stage in zip(describe(pipe, img.shape[:2], 3), pipe.stages):
        x, c = apply_stage(stage, x, c)
        assert st["output"] == [x.shape[0], x.shape[1], c], st


def test_describe_fields_dilation_global_and_conv2d(tmp_path):
    w = np.random.default_rng(1).standard_normal((8, 3, 5, 5)).astype(np.float32)
    np.save(tmp_path / "w.npy", w)  # a weight with no bias: weights only are parameters
    np.savez(tmp_path / "wb.npz", weight=w, bias=np.zeros(8, np.float32))
    stages = describe(Pipeline.parse(f"conv2d @{tmp_path / 'w.npy'} padding=2 dilation=2 | max 2"), (64, 80), 3)
    assert stages[0]["params"] == 8 * 3 * 25 and stages[0]["receptive_field"] == [9, 9]  # 2·(5 − 1) + 1
    assert stages[1]["receptive_field"] == [10, 10] and stages[1]["jump"] == [2, 2]
    layer = Pipeline.parse(f"conv2d @{tmp_path / 'wb.npz'} | global avg")
    got = describe(layer, (40, 50), 3)
    assert got[0]["params"] == 8 * 3 * 25 + 8 and got[1]["receptive_field"] == [40, 50]
    symbolic = describe(Pipeline.parse("max 2 | sobel boundary=valid | global avg"))
    assert symbolic[0]["output"] == ["⌊H/2⌋", "⌊W/2⌋", "C"]
    assert symbolic[1]["output"][0] == "⌊H/2⌋ − 2" and symbolic[2]["receptive_field"] == ["H", "W"]


def test_field_on_input_is_what_the_output_depends_on():
    """Changing an input pixel outside the field leaves the output cell unchanged; inside, the
    field's corners each change it."""
    pipe = Pipeline.parse("sobel boundary=constant | max 2 | box size=3 boundary=constant | max 3 stride=2")
    img = np.random.default_rng(2).random((60, 70)).astype(np.float32) + 1
    base = poolcli.run(img, pipe.text)
    x, y = 4, 5
    f = field_on_input(pipe, 4, x, y, img.shape)
    (r0, r1), (c0, c1) = f["rows"], f["cols"]
    for r, c in [(r0 - 1, c0), (r1 + 1, c1), (r0, c1 + 1), (r1, c0 - 1)]:  # just outside: no effect
        bumped = img.copy()
        bumped[r, c] += 50
        assert poolcli.run(bumped, pipe.text)[y, x] == base[y, x], (r, c)
    inside = np.zeros(img.shape, bool)
    inside[r0 : r1 + 1, c0 : c1 + 1] = True
    bumped = img + np.where(inside, 0, 50).astype(np.float32)  # everything outside changed at once
    assert poolcli.run(bumped, pipe.text)[y, x] == base[y, x]


def test_describe_on_the_command_line(cli, samples):
    r = cli("run", "sobel | max 2 | sobel | max 3 stride=2", samples / "camera.png", "--describe", "--json")
    assert r.code == 0, r
    got = r.json["stages"]
    assert [s["receptive_field"] for s in got] == [[3, 3], [4, 4], [8, 8], [12, 12]]
    assert got[-1]["output"][:2] == [127, 127] and not list(samples.glob("*sobel*"))  # writes nothing
    r = cli("run", "max 2 | relu", "--describe")
    assert r.code == 0 and "⌊H/2⌋" in r.stdout.decode(), r  # no INPUT: symbolic, stdin never read
    assert cli("run", "max 2", samples / "camera.png", samples / "chelsea.png", "--describe").code == 2


@pytest.mark.parametrize("text,number,channel", [
    ("gaussian sigma=1 | sobel-x | relu | max 2", 4, 1),
    ("gaussian sigma=1 | sobel-x | relu | max 2", 2, 2),
    ("conv sobel-x,sobel-y | relu | avg 3 stride=2 padding=1", 1, 4),
    ("sobel | lp 2 stride=1 | adaptive max 7x5", 3, 0),
    ("gray | sharpen boundary=wrap stride=2 | tanh", 3, 0),
])  # fmt: skip
def test_explain_any_stage_equals_the_pipeline(text, number, channel):
    pipe = Pipeline.parse(text)
    img = np.random.default_rng(3).integers(0, 256, (41, 53, 3)).astype(np.uint8)
    x_map, colour = stage_input(pipe, img, number)
    out = poolcli.run(img, " | ".join(s.text for s in pipe.stages[:number]))
    out = out[:, :, None] if out.ndim == 2 else out
    for at in [(0, 0), (out.shape[1] - 1, out.shape[0] - 1), (3, 2)]:
        info = explain_at(pipe, number, x_map, colour, at, channel)
        assert info["output"] == float(out[at[1], at[0], channel])
        if info["kind"] == "convolution":
            sums = info["sum"] if isinstance(info["sum"], list) else [info["sum"]]
            want = np.hypot(*sums) if len(sums) == 2 else sums[0]
            assert want == pytest.approx(info["output"], rel=1e-5, abs=1e-4)
        if info["kind"] == "pooling" and info["mode"] == "avg":
            assert info["sum"] / info["window"]["divisor"] == pytest.approx(info["output"], rel=1e-5, abs=1e-5)


def test_explain_pipeline_on_the_command_line(cli, samples, tmp_path):
    text = "gaussian sigma=2 | conv sobel-x,sobel-y | relu | max 2"
    r = cli("explain", samples / "chelsea.png", "--pipeline", text, "--stage", "4", "--at", "10,12", "--channel", "5",
            "--json", "--png", tmp_path / "st.png")  # fmt: skip
    assert r.code == 0, r
    info = r.json
    src = np.asarray(Image.open(samples / "chelsea.png"))
    full = poolcli.run(src, text)
    assert info["output"] == float(full[12, 10, 5])
    assert info["stage"] == {"number": 4, "text": "max 2"}
    assert info["receptive_field"] == field_on_input(Pipeline.parse(text), 4, 10, 12, src.shape[:2])
    assert Image.open(tmp_path / "st.png").size[0] > 400
    r = cli("explain", samples / "chelsea.png", "--pipeline", text, "--stage", "3", "--at", "1,1")
    assert r.code == 0 and "relu(" in r.stdout.decode() and "receptive field on the input" in r.stdout.decode(), r
    for args, needle in [(["--stage", "5"], "--stage must be from 1 to 4"), (["--stage", "x"], "stage number"),
                         (["-k", "sobel"], "give no -k or -m")]:  # fmt: skip
        r = cli("explain", samples / "chelsea.png", "--pipeline", text, "--at", "0,0", *args)
        assert r.code == 2 and needle in r.stderr, r


def test_sweep_frames_hold_the_api_values(tmp_path):
    pipe = Pipeline.parse("conv sobel-x,sobel-y | max 3 stride=2 padding=1 dilation=2")
    img = np.random.default_rng(4).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    x_map, colour = stage_input(pipe, img, 2)
    out = poolcli.run(img, pipe.text)
    infos, note = sweep_frames(pipe, 2, x_map, colour, (16, 10), (5, 3), 3)
    assert out.shape[:2] == (14, 19)  # ⌊(30 + 2 − 2·2 − 1)/2⌋ + 1, ⌊(40 + 2 − 4 − 1)/2⌋ + 1
    assert len(infos) == 3 * 3 and "passes the output's edge" in note  # columns 16…18 of 19
    assert [(i["position"]["x"], i["position"]["y"]) for i in infos[:4]] == [(16, 10), (17, 10), (18, 10), (16, 11)]
    for info in infos:
        assert info["output"] == float(out[info["position"]["y"], info["position"]["x"], 3])
    write_sweep(pipe, 2, x_map, colour, (0, 0), (4, 4), 0, str(tmp_path / "s.gif"))
    gif = Image.open(tmp_path / "s.gif")
    assert gif.n_frames == 16 and max(gif.size) <= 1024
    write_sweep(pipe, 1, stage_input(pipe, img, 1)[0], 3, (0, 0), (2, 2), 0, str(tmp_path / "s.png"))
    apng = Image.open(tmp_path / "s.png")
    assert getattr(apng, "is_animated", False) and apng.n_frames == 4


def test_sweep_on_the_command_line(cli, samples, tmp_path):
    for args in (["-k", "sobel"], ["-m", "avg", "-s", "3", "--padding", "1"], ["-m", "max", "-s", "2"]):
        r = cli("explain", samples / "camera.png", *args, "--at", "3,4", "--sweep", tmp_path / "a.gif", "--region", "3x2")
        assert r.code == 0, r
        assert Image.open(tmp_path / "a.gif").n_frames == 6
    r = cli("explain", samples / "camera.png", "-k", "sobel", "--at", "0,0", "--sweep", tmp_path / "b.gif",
            "--region", "17x16")  # fmt: skip
    assert r.code == 2 and "at most 256" in r.stderr and not (tmp_path / "b.gif").exists(), r
    r = cli("explain", samples / "camera.png", "-k", "sobel", "--at", "510,510", "--sweep", tmp_path / "c.gif")
    assert r.code == 0 and "passes the output's edge" in r.stderr and Image.open(tmp_path / "c.gif").n_frames == 4, r
    r = cli("explain", samples / "camera.png", "-k", "sobel", "--at", "0,0", "--sweep", samples / "camera.png")
    assert r.code == 2 and "input" in r.stderr, r


def test_json_of_views_is_plain_json(cli, samples):
    r = cli("explain", samples / "camera.png", "-m", "max", "-s", "2", "--at", "1,1", "--json")
    assert r.code == 0 and json.loads(r.stdout)["output_size"]["formula_h"].endswith("= 256"), r


def test_ties_say_which_cell_won(cli, tmp_path):
    Image.fromarray(np.array([[9, 1], [3, 9]], np.uint8)).save(tmp_path / "t.png")
    r = cli("explain", "t.png", "-m", "max", "-s", "2", "--at", "0,0", "--json")
    assert r.code == 0, r
    assert r.json["window"]["ties"] == 2 and r.json["window"]["chosen"] == [0, 0]
    r = cli("explain", "t.png", "-m", "max", "-s", "2", "--at", "0,0")
    out = r.stdout.decode()
    assert "[9]" in out and "tie: 2 cells hold this value" in out, out
    r = cli("explain", "t.png", "-m", "min", "-s", "2", "--at", "0,0", "--json")
    assert r.json["window"]["ties"] == 1


def test_montage_labels_bank_maps_and_wraps_into_rows():
    from poolcli import teach
    from poolcli.teach.pictures import MONTAGE_ROW, map_labels

    img = np.random.default_rng(6).integers(0, 256, (300, 400, 3)).astype(np.uint8)
    pipe = Pipeline.parse("conv sobel-x,sobel-y | relu | max 2 | sobel | sobel")
    panels, labels = [("input", img, 3)], [["R", "G", "B"]]

    def on_stage(i, stage, array, colour, seconds):
        labels[0] = map_labels(labels[0], stage)
        panels.append((f"{i}. {stage.text}", array, colour, labels[0]))

    pipe.apply(img, 3, on_stage)
    picture, layout = teach.montage(panels)
    assert layout[1]["labels"] == ["sobel-x (R)", "sobel-x (G)", "sobel-x (B)", "sobel-y (R)", "sobel-y (G)",
                                   "sobel-y (B)"]  # fmt: skip
    assert picture.width <= MONTAGE_ROW and len({p["y"] for p in layout}) > 1  # wrapped, not one long strip


def test_sweep_captions_print_the_api_values():
    from poolcli.teach.numbers import num
    from poolcli.teach.sweep import caption

    for text, number in [("sobel", 1), ("conv sobel-x,sobel-y | avg 3 stride=2 padding=1", 2), ("sharpen | relu", 2)]:
        pipe = Pipeline.parse(text)
        img = np.random.default_rng(7).integers(0, 256, (20, 24, 3)).astype(np.uint8)
        x_map, colour = stage_input(pipe, img, number)
        out = poolcli.run(img, " | ".join(s.text for s in pipe.stages[:number]))
        infos, _ = sweep_frames(pipe, number, x_map, colour, (1, 1), (3, 2), 1)
        for info in infos:
            p = info["position"]
            want = num(float(out[p["y"], p["x"], 1]))
            assert f"= {want}" in caption(info), (caption(info), want)
