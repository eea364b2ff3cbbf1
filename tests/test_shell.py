"""Shell manners delivered so far (contract §3): completion, environment defaults, the report's
version and resolved settings, --version, a lone failure without a summary table."""

import os

import numpy as np
from PIL import Image

from test_cli import one_line_error


def _photo(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3)).astype(np.uint8)).save(path)


def _complete(cli, words: str, cword: int):
    r = cli(env={"COMP_WORDS": words, "COMP_CWORD": str(cword), "_POOLCLI_COMPLETE": "complete_bash"})
    return r.stdout.decode().split()


def test_completion_completes_commands_options_and_values(cli):
    assert "convolve" in _complete(cli, "poolcli conv", 1)
    assert "--mode" in _complete(cli, "poolcli pool --mo", 2)
    assert _complete(cli, "poolcli convolve x -k sobel-", 4) == ["sobel-x", "sobel-y"]
    assert "avg" in _complete(cli, "poolcli pool x -m a", 4)
    assert "reflect" in _complete(cli, "poolcli convolve x -b ref", 4)
    assert _complete(cli, "poolcli pool x -f np", 4) == ["npy"]


def test_show_completion_prints_a_script(cli):
    r = cli("--show-completion", "bash")
    assert r.code == 0 and b"_POOLCLI_COMPLETE" in r.stdout


def test_environment_defaults_and_the_command_line_wins(cli, tmp_path):
    _photo(tmp_path / "in.png")
    r = cli("pool", "in.png", "-m", "max", "-s", "2", "-o", "o.png", env={"POOLCLI_MAX_PIXELS": "10"})
    assert r.code == 1 and "over the limit of 10" in r.stderr
    r = cli("pool", "in.png", "-m", "max", "-s", "2", "-o", "o.png", "--max-pixels", "0", "-q",
            env={"POOLCLI_MAX_PIXELS": "10"})  # fmt: skip
    assert r.code == 0, r
    r = cli("pool", "in.png", "-m", "max", "-s", "2", "-o", "o.png", "--json", "-q",
            env={"POOLCLI_JOBS": "1", "POOLCLI_THREADS": "1"})  # fmt: skip
    assert r.json["settings"]["jobs"] == 1 and r.json["settings"]["threads"] == 1
    for var in ("POOLCLI_JOBS", "POOLCLI_THREADS", "POOLCLI_MAX_PIXELS"):
        r = cli("pool", "in.png", "-m", "max", "-s", "2", "-o", "o.png", env={var: "abc"})
        assert r.code == 2
        one_line_error(r, var)


def test_the_report_has_the_version_and_resolved_settings(cli, tmp_path):
    import poolcli

    _photo(tmp_path / "in.png")
    r = cli("pool", "in.png", "-m", "avg", "-s", "3x2", "--stride", "2", "-o", "o.png", "--json", "-q")
    doc = r.json
    assert doc["version"] == poolcli.__version__
    st = doc["settings"]
    assert st["size"] == [3, 2] and st["stride"] == [2, 2] and st["padding"] == [0, 0]
    assert st["count_include_pad"] is True and isinstance(st["jobs"], int) and isinstance(st["threads"], int)
    r = cli("convolve", "in.png", "-k", "gaussian", "--sigma", "2", "-o", "o.png", "--json", "-q")
    st = r.json["settings"]
    assert st["sigma"] == 2.0 and st["stride"] == 1 and st["kernel_shape"] == [17, 17]


def test_version_names_the_engine_and_the_cache(cli):
    r = cli("--version", env={"NUMBA_CACHE_DIR": "/tmp/some-cache"})
    text = r.stdout.decode()
    assert r.code == 0
    for name in ("poolcli", "numpy", "numba", "llvmlite"):
        assert any(line.startswith(name + " ") for line in text.splitlines()), text
    assert "cache /tmp/some-cache" in text


def test_a_lone_failure_prints_one_line_and_no_table(cli, tmp_path):
    r = cli("pool", "missing.png", "-m", "max", "-s", "2", "-o", "o.png")
    assert r.code == 1
    assert r.stderr.strip().splitlines() == ["poolcli: error: missing.png: no such file"]
    assert not os.path.exists(tmp_path / "o.png")


def test_files_from_a_list_and_a_nul_list(cli, tmp_path):
    for name in ("a.png", "b c.png", "g*.png"):
        _photo(tmp_path / name)
    (tmp_path / "list.txt").write_text("a.png\r\n\nb c.png\ng*.png\nmissing.png\n")
    r = cli("pool", "--files-from", "list.txt", "-m", "max", "-s", "2", "-o", "out/", "--json", "-q")
    assert r.code == 1  # the missing entry fails alone
    rows = {f["input"]: f["error"] for f in r.json["files"]}
    assert rows["a.png"] is None and rows["b c.png"] is None and rows["g*.png"] is None  # never a glob
    assert "no such file" in rows["missing.png"]
    r = cli("pool", "--files-from", "-", "-0", "-m", "max", "-s", "2", "-o", "nul/", "-q", stdin=b"a.png\0b c.png\0")
    assert r.code == 0, r
    assert sorted(os.listdir(tmp_path / "nul")) == ["a_max2.png", "b c_max2.png"]


def test_files_from_usage_errors(cli, tmp_path):
    _photo(tmp_path / "a.png")
    r = cli("pool", "a.png", "-0", "-m", "max", "-s", "2", "-o", "o.png")
    assert r.code == 2
    one_line_error(r, "-0/--null goes with --files-from")
    r = cli("pool", "-", "--files-from", "-", "-m", "max", "-s", "2", "-o", "o.png", stdin=b"a.png\n")
    assert r.code == 2
    one_line_error(r, "--files-from -")


def test_dry_run_prints_the_plan_and_writes_nothing(cli, tmp_path):
    _photo(tmp_path / "a.png")
    _photo(tmp_path / "b.png")
    r = cli("run", "conv sobel-x,sobel-y", "a.png", "b.png", "missing.png", "-o", "out/", "--dry-run", "--tag", "t",
            "--report", "r.json")  # fmt: skip
    assert r.code == 1  # missing.png fails a check that needs no decoding
    lines = r.stdout.decode().splitlines()
    assert lines == ["a.png → out/a_t.png (+5 more files)", "b.png → out/b_t.png (+5 more files)"]
    assert "missing.png: no such file" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]  # no folder, no report
    r = cli("run", "conv sobel-x,sobel-y", "a.png", "-o", "out/", "--dry-run", "--json", "--tag", "t")
    assert r.code == 0
    (row,) = r.json["files"]
    assert row["outputs"] == [f"out/a_t_{n}.png" for n in range(6)]
    r = cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "o.png", "--dry-run", env={"PYTHONIOENCODING": "ascii"})
    assert r.stdout.decode() == "a.png -> o.png\n"
    r = cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "o.png", "--report", "a.png", "--dry-run")
    assert r.code == 2  # the checks of a real run, collisions included


def test_dry_run_removes_no_stale_temp_files(cli, tmp_path):
    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / ".poolcli-nohost-999999-abcdefgh.tmp"
    stale.write_bytes(b"x")
    _photo(tmp_path / "a.png")
    r = cli("pool", "a.png", "-m", "max", "-s", "2", "-o", "out/", "--dry-run")
    assert r.code == 0 and stale.exists()


def _folder(tmp_path):
    (tmp_path / "in").mkdir()
    _photo(tmp_path / "in" / "a.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "in" / "b.jpg")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "in" / "g.gif")


def test_name_templates(cli, tmp_path):
    _folder(tmp_path)
    r = cli("pool", "in/", "-m", "max", "-s", "2", "-o", "out/", "--name", "{stem}-{tag}.{ext}", "-q")
    assert r.code == 0, r
    assert sorted(os.listdir(tmp_path / "out")) == ["a-max2.png", "b-max2.png", "g-max2.png"]
    r = cli("pool", "in/", "-m", "max", "-s", "2", "-o", "small/%s_small.png", "-q")  # vips' %s, in -o
    assert r.code == 0, r
    assert sorted(os.listdir(tmp_path / "small")) == ["a_small.png", "b_small.png", "g_small.png"]
    r = cli("pool", "in/a.png", "-m", "max", "-s", "2", "--name", "beside_%s.png", "-q")  # as mogrify does
    assert r.code == 0 and (tmp_path / "in" / "beside_a.png").exists()
    r = cli("run", "conv sobel-x,sobel-y", "in/a.png", "-o", "maps/", "--name", "{stem}.map{n}.png", "-q")
    assert r.code == 0, r
    assert sorted(os.listdir(tmp_path / "maps")) == [f"a.map{n}.png" for n in range(6)]
    r = cli("run", "conv sobel-x,sobel-y", "in/a.png", "-o", "maps2/", "--name", "{stem}.png", "-q")
    assert sorted(os.listdir(tmp_path / "maps2")) == [f"a_{n}.png" for n in range(6)]  # _{n} added


def test_name_errors_create_nothing(cli, tmp_path):
    _folder(tmp_path)
    (tmp_path / "in" / "a.jpg").write_bytes((tmp_path / "in" / "b.jpg").read_bytes())
    for args, needle in ((["--name", "{bogus}.png"], "unknown field {bogus}"),
                         (["-o", "x.png", "--name", "q.png"], "--name"),
                         (["--name", "{stem}.png"], "would both be written")):  # a.png and a.jpg collide  # fmt: skip
        out = [] if "-o" in args else ["-o", "out/"]
        r = cli("pool", "in/", "-m", "max", "-s", "2", *out, *args)
        assert r.code == 2, (args, r)
        one_line_error(r, needle)
        assert not (tmp_path / "out").exists()


def test_format_same_keeps_each_inputs_format(cli, tmp_path):
    _folder(tmp_path)
    r = cli("pool", "in/", "-m", "max", "-s", "2", "-o", "out/", "-f", "same")
    assert r.code == 0, r
    assert sorted(os.listdir(tmp_path / "out")) == ["a_max2.png", "b_max2.jpg", "g_max2.png"]
    assert "g.gif: written as PNG" in r.stderr
    assert Image.open(tmp_path / "out" / "b_max2.jpg").format == "JPEG"


def test_help_reads_at_80_and_100_columns(cli):
    for columns in ("80", "100"):
        for command in ("convolve", "pool", "run", "explain"):
            r = cli(command, "--help", env={"COLUMNS": columns})
            text = r.stdout.decode()
            assert r.code == 0 and "…" not in text, (command, columns)
            assert " TEXT" not in text, (command, columns)  # every value has its shape or its choices
            if command != "explain":
                for panel in ("Arguments:", "Operation:", "Output:", "Batch:", "Performance:", "Cluster:"):
                    assert panel in text, (command, panel)
            lines = text.splitlines()
            for i, line in enumerate(lines):  # every option has a description, on its line or the next
                if line.startswith("  -") and len(line.split()) < 2 + line.count(","):
                    assert lines[i + 1].startswith(" " * 20), (command, line)
    pool = cli("pool", "--help", env={"COLUMNS": "80"}).stdout.decode()
    assert "[max|min|median|avg|lp|stochastic|l2]" in pool and "K|KHxKW" in pool and "WxH" in pool
    run = cli("run", "--help", env={"COLUMNS": "80"}).stdout.decode()
    from poolcli import ops

    for name in ops.OPERATIONS:
        if ops.OPERATIONS[name].kind != "pool":
            assert f"  {name}" in run, name
    conv = cli("convolve", "--help", env={"COLUMNS": "80"}).stdout.decode()
    assert "[reflect|mirror|nearest|wrap|constant|valid]" in conv
