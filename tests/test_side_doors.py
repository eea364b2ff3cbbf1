"""The second hostile-input audit (issue #21): nothing lost through the side doors, nothing
crashing outside a file's own handling, nothing hanging or growing.  Each test names its class
(D1 … U5); every one runs the installed command (or the API) as a user would."""

import json
import os
import socket
import stat
import struct
import subprocess
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import poolcli_command
from test_cli import one_line_error


def _photo(path, w=60, h=40, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)).save(path)


# ------------------------------------------------------------------ D1: every file a run writes is planned


@pytest.mark.parametrize("flag", ["--montage", "--report"])
def test_d1_montage_and_report_never_replace_an_input(cli, tmp_path, flag):
    _photo(tmp_path / "victim.png")
    before = (tmp_path / "victim.png").read_bytes()
    r = cli("convolve", "victim.png", "-k", "sobel", "-o", "o.png", flag, "victim.png")
    assert r.code == 2
    one_line_error(r, "victim.png", "never overwritten")
    assert (tmp_path / "victim.png").read_bytes() == before and not (tmp_path / "o.png").exists()


def test_d1_explain_png_never_replaces_its_image(cli, tmp_path):
    _photo(tmp_path / "victim.png")
    before = (tmp_path / "victim.png").read_bytes()
    r = cli("explain", "victim.png", "-k", "sobel", "--at", "0,0", "--png", "victim.png")
    assert r.code == 2
    one_line_error(r, "--png victim.png", "never overwritten")
    assert (tmp_path / "victim.png").read_bytes() == before


def test_d1_bank_maps_never_replace_another_input(cli, tmp_path):
    _photo(tmp_path / "x.png")
    _photo(tmp_path / "x_t_0.png", seed=1)
    before = (tmp_path / "x_t_0.png").read_bytes()
    r = cli("run", "conv sobel-x,sobel-y", "x.png", "x_t_0.png", "--tag", "t", "-o", "./")
    assert r.code == 2
    one_line_error(r, "x_t_0.png", "never overwritten")
    assert (tmp_path / "x_t_0.png").read_bytes() == before


def test_d1_saved_stages_never_replace_another_input(cli, tmp_path):
    _photo(tmp_path / "x.png")
    _photo(tmp_path / "x_t.1-blur.png", seed=1)
    before = (tmp_path / "x_t.1-blur.png").read_bytes()
    r = cli("run", "blur | max 2", "x.png", "x_t.1-blur.png", "--tag", "t", "--save-stages", "-o", "./")
    assert r.code == 2
    one_line_error(r, "x_t.1-blur.png", "never overwritten")
    assert (tmp_path / "x_t.1-blur.png").read_bytes() == before


@pytest.mark.parametrize("flag", ["--montage", "--report"])
def test_d1_two_files_of_a_run_never_share_a_path(cli, tmp_path, flag):
    _photo(tmp_path / "in.png")
    r = cli("convolve", "in.png", "-k", "sobel", "-o", "out.png", flag, "out.png")
    assert r.code == 2
    one_line_error(r, "out.png", "would both be written")
    assert not (tmp_path / "out.png").exists()


def test_d1_montage_and_image_never_share_stdout(cli, tmp_path):
    _photo(tmp_path / "in.png")
    r = cli("convolve", "in.png", "-k", "sobel", "-o", "-", "--montage", "-")
    assert r.code == 2 and r.stdout == b""
    one_line_error(r, "standard output")


def test_d1_montage_must_be_a_picture(cli, tmp_path):
    _photo(tmp_path / "in.png")
    r = cli("convolve", "in.png", "-k", "sobel", "-o", "o.png", "--montage", "m.npy")
    assert r.code == 2
    one_line_error(r, "--montage m.npy", "image extension")


# ------------------------------------------------------------------ D3: devices are written through


def test_d3_a_device_as_report_is_written_through(cli, tmp_path):
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    _photo(tmp_path / "in.png")
    r = cli("pool", "in.png", "-m", "max", "-s", "2", "-o", "o.png", "--report", "null", "-q")
    assert r.code == 0, r
    assert stat.S_ISCHR(os.stat(node).st_mode) and (tmp_path / "o.png").exists()


# ------------------------------------------------------------------ D4: --skip-existing checks every file


def test_d4_skip_existing_rebuilds_a_missing_bank_map(cli, tmp_path):
    _photo(tmp_path / "x.png")
    args = ("run", "conv sobel-x,sobel-y", "x.png", "--tag", "t", "-o", "out/", "-q")
    assert cli(*args).code == 0
    maps = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert maps == [f"x_t_{n}.png" for n in range(6)]
    (tmp_path / "out" / "x_t_4.png").unlink()
    r = cli(*args[:-1], "--skip-existing", "--json")
    assert r.code == 0 and r.json["files"][0]["skipped"] is False, r
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == maps
    r = cli(*args[:-1], "--skip-existing", "--json")
    assert r.json["files"][0]["skipped"] is True


def test_d4_skip_existing_rebuilds_a_missing_saved_stage(cli, tmp_path):
    _photo(tmp_path / "x.png")
    args = ("run", "blur | max 2", "x.png", "--tag", "t", "--save-stages", "-o", "out/", "--json", "-q")
    assert cli(*args).code == 0
    (tmp_path / "out" / "x_t.1-blur.png").unlink()
    r = cli(*args, "--skip-existing")
    assert r.json["files"][0]["skipped"] is False and (tmp_path / "out" / "x_t.1-blur.png").exists()
    assert cli(*args, "--skip-existing").json["files"][0]["skipped"] is True


# ------------------------------------------------------------------ C1: probes inside a file's handling


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_c1_a_bigtiff_offset_past_2_63_fails_alone(cli, tmp_path, jobs):
    (tmp_path / "big.tif").write_bytes(b"II+\x00\x08\x00\x00\x00" + struct.pack("<Q", 2**63 + 5) + b"\0" * 100)
    _photo(tmp_path / "good.png")
    r = cli("pool", "big.tif", "good.png", "-m", "max", "-s", "2", "-o", "o/", "--json", "--jobs", jobs)
    assert r.code == 1, r
    rows = {row["input"]: row for row in r.json["files"]}
    assert rows["big.tif"]["error"].startswith("big.tif: ") and "internal" not in rows["big.tif"]["error"]
    assert rows["good.png"]["error"] is None and (tmp_path / "o" / "good_max2.png").exists()


# ------------------------------------------------------------------ C2, E1, E2: standard output


def _closed_stdout(args, cwd):
    return subprocess.run(poolcli_command() + args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(1), timeout=120)  # fmt: skip


@pytest.mark.parametrize("args", [["--version"], ["kernels"], ["pool", "in.png", "-m", "max", "-s", "2", "-o", "-"],
                                  ["pool", "in.png", "-m", "max", "-s", "2", "-o", "o.png", "--json", "-q"]])  # fmt: skip
def test_c2_closed_stdout_that_is_needed_is_one_line_exit_1(tmp_path, args):
    _photo(tmp_path / "in.png")
    proc = _closed_stdout(args, tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert len([ln for ln in err.splitlines() if ln.startswith("poolcli: error:")]) == 1, err


def test_c2_closed_stdout_that_is_not_needed_is_fine(tmp_path):
    _photo(tmp_path / "in.png")
    proc = _closed_stdout(["pool", "in.png", "-m", "max", "-s", "2", "-o", "b.png", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "b.png").exists()


def test_e1_a_pipe_whose_reader_is_gone_is_not_success(tmp_path):
    _photo(tmp_path / "in.png", 400, 300)
    read, write = os.pipe()
    os.close(read)  # the reader went away before a byte was written
    try:
        proc = subprocess.run(poolcli_command() + ["pool", "in.png", "-m", "max", "-s", "1", "-o", "-"], cwd=tmp_path,
                              stdout=write, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    finally:
        os.close(write)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "cannot write the image to standard output" in err and "Traceback" not in err


def test_e2_json_to_a_full_disk_is_exit_1(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    _photo(tmp_path / "in.png")
    with open("/dev/full", "w") as full:
        proc = subprocess.run(poolcli_command() + ["pool", "in.png", "-m", "max", "-s", "2", "-o", "o.png", "--json",
                                                   "-q"], cwd=tmp_path, stdout=full, stderr=subprocess.PIPE,
                              timeout=120)  # fmt: skip
    assert proc.returncode == 1, proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()


# ------------------------------------------------------------------ C3, C4: metadata


def test_c3_a_camera_jpeg_to_8_bit_tiff_keeps_its_exif(cli, tmp_path):
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3)).astype(np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif.get_ifd(0x8769)[0x829A] = (1, 100)
    exif.get_ifd(0x8769)[0x9003] = "2024:01:01 10:00:00"
    im.save(tmp_path / "cam.jpg", exif=exif.tobytes())
    r = cli("pool", "cam.jpg", "-m", "max", "-s", "1", "-o", "cam.tif", "-q")
    assert r.code == 0, r
    out = Image.open(tmp_path / "cam.tif").getexif()
    assert out.get(0x010F) == "Canon" and out.get_ifd(0x8769).get(0x9003) == "2024:01:01 10:00:00"


@pytest.mark.parametrize("tag", [(274, "H", 2, (6, 1)), (274, "s", 0, "six"), (274, "2I", 1, (6, 1)), (274, "H", 1, 99)])
def test_c4_odd_orientation_tags_are_upright(cli, tmp_path, tag):
    import tifffile

    px = np.random.default_rng(1).integers(0, 65535, (20, 30, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "o.tif", px, photometric="rgb", extratags=[(*tag, True)])
    r = cli("pool", "o.tif", "-m", "max", "-s", "1", "-o", "o.npy", "-q")
    assert r.code == 0, r
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), px.astype(np.float32))


# ------------------------------------------------------------------ C5: kernel files


def test_c5_kernel_files_are_bounded(cli, tmp_path):
    _photo(tmp_path / "in.png")
    os.mkfifo(tmp_path / "k.txt")
    np.savez(tmp_path / "z.npz", a=np.ones((3, 3)))
    os.rename(tmp_path / "z.npz", tmp_path / "z.npy")
    (tmp_path / "e.npy").write_bytes(b"")
    with open(tmp_path / "sparse.npy", "wb") as fh:
        fh.truncate(3 << 30)
    for kernel, needle in (("@k.txt", "not a regular file"), ("@z.npy", ".npz archive"), ("@e.npy", "empty file"),
                           ("@sparse.npy", "larger than 64 MB")):  # fmt: skip
        r = cli("convolve", "in.png", "-k", kernel, "-o", "o.png", timeout=60)
        assert r.code == 2, (kernel, r)
        one_line_error(r, kernel, needle)


# ------------------------------------------------------------------ C7: globs over symlink loops


def test_c7_a_recursive_glob_over_symlink_loops_ends(measured, tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    _photo(tmp_path / "in" / "a.png")
    _photo(tmp_path / "in" / "sub" / "b.png", seed=2)
    os.symlink(".", tmp_path / "in" / "l1")
    os.symlink(".", tmp_path / "in" / "l2")
    r = measured("pool", "in/**/*.png", "-m", "max", "-s", "2", "-o", "out/", "--json", "-q", timeout=60)
    assert r.code == 0, r
    assert sorted(os.path.basename(f["input"]) for f in json.loads(r.stdout)["files"]) == ["a.png", "b.png"]
    assert r.peak_mb < 400


# ------------------------------------------------------------------ C8: terminals that are not UTF-8


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "cp1252"])
@pytest.mark.parametrize("args", [["kernels"], ["kernels", "sobel"], ["explain", "--demo"], ["--help"], ["pool", "--help"]])
def test_c8_a_non_utf8_terminal_degrades_never_fails(cli, encoding, args):
    r = cli(*args, env={"PYTHONIOENCODING": encoding})
    assert r.code == 0, r
    r.stdout.decode(encoding)  # what it printed is in the terminal's encoding


def test_c8_explain_on_an_ascii_terminal(cli, tmp_path):
    _photo(tmp_path / "in.png")
    r = cli("explain", "in.png", "-k", "sobel", "--at", "1,1", env={"PYTHONIOENCODING": "ascii"})
    assert r.code == 0, r
    text = r.stdout.decode("ascii")
    assert "sqrt" in text and "floor(" in text


# ------------------------------------------------------------------ C10, C11, U4: odd inputs


def test_c10_negative_npy_dimensions_fail_alone_streamed_or_not(cli, tmp_path):
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (-5, 4), }"
    header += b" " * (118 - len(header)) + b"\n"
    (tmp_path / "neg.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 80)
    for flag in ("--stream", "--no-stream"):
        r = cli("pool", "neg.npy", "-m", "max", "-s", "2", "-o", "o.npy", flag)
        assert r.code == 1 and "neg.npy" in r.stderr and "internal" not in r.stderr and "Traceback" not in r.stderr


def test_c11_explain_on_a_folder_is_one_line(cli, tmp_path):
    r = cli("explain", ".", "-k", "sobel", "--at", "0,0")
    assert r.code == 1
    one_line_error(r, ".", "directory")


def test_u4_npy_claiming_more_than_it_holds_says_so(cli, tmp_path):
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"
    header += b" " * (118 - len(header)) + b"\n"
    (tmp_path / "huge.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 80)
    r = cli("pool", "huge.npy", "-m", "max", "-s", "2", "-o", "o.npy", "--max-pixels", "0")
    assert r.code == 1 and "more than the file holds" in r.stderr and "out of memory" not in r.stderr


def test_u4_o_is_the_input_folder(cli, tmp_path):
    (tmp_path / "in").mkdir()
    _photo(tmp_path / "in" / "a.png")
    r = cli("pool", "in", "-m", "max", "-s", "2", "-o", "in")
    assert r.code == 2
    one_line_error(r, "-o in", "input folder")


# ------------------------------------------------------------------ E3, U1, U2: names and numbers


def test_e3_an_explicit_tag_too_long_is_refused_up_front(cli, tmp_path):
    _photo(tmp_path / "in.png")
    r = cli("run", "blur", "in.png", "--tag", "t" * 300)
    assert r.code == 2
    one_line_error(r, "--tag is 300 bytes")


def test_e3_a_long_pipeline_writes_a_short_name(cli, tmp_path):
    _photo(tmp_path / "in.png")
    r = cli("run", " | ".join(["blur"] * 70), "in.png", "-q")
    assert r.code == 0, r
    (made,) = [p for p in tmp_path.iterdir() if p.name.startswith("in_")]
    assert len(made.name.encode()) < 255


def test_u1_a_tag_with_a_newline_is_refused(cli, tmp_path):
    _photo(tmp_path / "in.png")
    r = cli("run", "blur", "in.png", "--tag", "a\nb")
    assert r.code == 2
    one_line_error(r, "--tag")


def test_u2_pipeline_numbers_are_float32(cli, tmp_path):
    _photo(tmp_path / "in.png")
    r = cli("run", "scale 1e300", "in.png", "-o", "o.npy")
    assert r.code == 2
    one_line_error(r, "scale 1e300", "float32")


# ------------------------------------------------------------------ M1: wide images stream bounded


def test_m1_a_wide_image_claiming_huge_width_is_refused_not_streamed(measured, tmp_path):
    import zlib

    from pngmaker import chunk

    w, h = 60_000_000, 2
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0)
    stream, block, parts = zlib.compressobj(1), bytes(1 << 22), []
    for _ in range(h):  # two rows of 480 MB each, compressed piece by piece (the test stays small)
        parts.append(stream.compress(b"\0"))
        parts += [stream.compress(block) for _ in range(w * 8 // len(block))]
        parts.append(stream.compress(bytes(w * 8 % len(block))))
    data = b"".join(parts) + stream.flush()
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    (tmp_path / "wide.png").write_bytes(png)
    r = measured("pool", "wide.png", "-m", "max", "-s", "2", "-o", "o.png", timeout=120)
    assert r.code == 1 and "over the limit" in r.stderr, r
    assert r.peak_mb < 600


# ------------------------------------------------------------------ C6: schedulers that are not schedulers


def _server(handler):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.settimeout(30)

    def serve():
        try:
            conn, _ = sock.accept()
            with conn:
                handler(conn)
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    return sock, f"tcp://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("kind", ["junk", "http", "silent"])
def test_c6_a_peer_that_is_not_a_scheduler_is_one_line(cli, tmp_path, kind):
    pytest.importorskip("distributed")
    import time

    def junk(conn):
        conn.sendall(os.urandom(4096))
        time.sleep(2)

    def http(conn):
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        time.sleep(2)

    def silent(conn):
        time.sleep(25)

    sock, address = _server({"junk": junk, "http": http, "silent": silent}[kind])
    _photo(tmp_path / "in.png")
    t0 = time.time()
    try:
        r = cli("pool", "in.png", "-m", "max", "-s", "2", "-o", "o.png", "--scheduler", address, timeout=90)
    finally:
        sock.close()
    assert r.code == 2, r
    one_line_error(r, address)
    assert time.time() - t0 < 60
    assert not (tmp_path / "o.png").exists()


# ------------------------------------------------------------------ C9: a streamed bank's writers are bounded


def test_c9_a_streamed_bank_of_300_maps_writes_within_100_open_files(tmp_path):
    import resource

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 80)).astype(np.uint8)).save(tmp_path / "g.png")
    bank = ",".join(["sobel-x", "sobel-y", "blur", "sharpen"] * 75)

    def few_files():
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))

    proc = subprocess.run(poolcli_command() + ["run", f"conv {bank}", "g.png", "-o", "bank/", "--stream", "--tag", "b",
                                               "-q"], cwd=tmp_path, capture_output=True, preexec_fn=few_files,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert sorted(os.listdir(tmp_path / "bank")) == sorted(f"g_b_{n}.png" for n in range(300))
    whole = subprocess.run(poolcli_command() + ["run", f"conv {bank}", "g.png", "-o", "whole/", "--no-stream", "--tag",
                                                "b", "-q"], cwd=tmp_path, capture_output=True, timeout=300)  # fmt: skip
    assert whole.returncode == 0
    for n in (0, 31, 32, 299):  # groups of maps written in separate passes equal the whole image's
        a = np.asarray(Image.open(tmp_path / "bank" / f"g_b_{n}.png"))
        b = np.asarray(Image.open(tmp_path / "whole" / f"g_b_{n}.png"))
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ M3: memory that multiplies is bounded


def test_m3_a_bank_that_cannot_fit_is_refused_before_decoding(tmp_path):
    import resource

    _photo(tmp_path / "q.png", 512, 512)
    bank = ",".join(["sobel-x", "sobel-y", "blur", "sharpen"] * 500)

    def small():  # 3 GB of address space: the 2,000 maps of this 0.26-MP photo would need about 6 GB
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    proc = subprocess.run(poolcli_command() + ["run", f"conv {bank}", "q.png", "-o", "bank/", "-f", "npy",
                                               "--no-stream", "--tag", "b"], cwd=tmp_path, capture_output=True,
                          preexec_fn=small, timeout=300)  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    lines = [ln for ln in err.splitlines() if ln.startswith("poolcli: error:")]
    assert len(lines) == 1 and "q.png: 512x512 needs about" in lines[0] and "address-space limit" in lines[0], err
    assert max(len(ln) for ln in err.splitlines()) < 400  # the summary shows the bank's head, not 16,000 characters
    assert not (tmp_path / "bank").exists() or not os.listdir(tmp_path / "bank")


def test_m3_saved_stages_and_a_montage_of_a_large_photo_stay_bounded(measured, tmp_path):
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (1500, 2000, 3)).astype(np.uint8)).save(tmp_path / "big.png", compress_level=1)
    pipeline = " | ".join(["blur"] * 12)
    r = measured("run", pipeline, "big.png", "--save-stages", "-o", "out/", "--tag", "t", "-q", timeout=300)
    assert r.code == 0, r
    assert len(os.listdir(tmp_path / "out")) == 13
    saved_mb = r.peak_mb
    r = measured("run", pipeline, "big.png", "--montage", "m.png", "-o", "o.png", "-q", timeout=300)
    assert r.code == 0, r
    assert max(Image.open(tmp_path / "m.png").size) <= 4096
    # 3 MP: a stage is 36 MB of float32; twelve of them held at once would be 430 MB more
    assert saved_mb < 450 and r.peak_mb < 450, (saved_mb, r.peak_mb)


# ------------------------------------------------------------------ U3, D2


def test_u3_a_streamed_tiff_gets_the_tag_table_checks(cli, tmp_path):
    from hostile import tiff_tag_bomb

    (tmp_path / "tags.tif").write_bytes(tiff_tag_bomb(200, 1_000_000))
    for flag in ("--stream", "--no-stream"):
        r = cli("pool", "tags.tif", "-m", "max", "-s", "1", "-o", "o.png", flag)
        assert r.code == 1 and "tags claim" in r.stderr, (flag, r)
        assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("what", ["explain", "montage", "report"])
def test_d2_secondary_files_are_replaced_atomically_never_rewritten_in_place(cli, tmp_path, what):
    """A file written in place would change under every hard link to it (and be cut short on a
    full disk); a temp file renamed over it leaves the old inode, and so the link, untouched."""
    _photo(tmp_path / "in.png")
    (tmp_path / "old").write_bytes(b"the old file")
    os.link(tmp_path / "old", tmp_path / "target.png" if what != "report" else tmp_path / "target.json")
    if what == "explain":
        r = cli("explain", "in.png", "-k", "sobel", "--at", "1,1", "--png", "target.png")
    elif what == "montage":
        r = cli("convolve", "in.png", "-k", "sobel", "-o", "o.png", "--montage", "target.png", "-q")
    else:
        r = cli("convolve", "in.png", "-k", "sobel", "-o", "o.png", "--report", "target.json", "-q")
    assert r.code == 0, r
    assert (tmp_path / "old").read_bytes() == b"the old file"
    new = tmp_path / ("target.json" if what == "report" else "target.png")
    assert new.read_bytes() != b"the old file" and not [p for p in tmp_path.iterdir() if p.name.startswith(".poolcli-")]
