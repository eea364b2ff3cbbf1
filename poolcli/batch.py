"""Inputs → tasks → results: expansion of files, folders and globs, output naming, and running
every task in this process or in a pool of worker processes.

Nothing here prints: progress and per-file outcomes go to an ``on_result`` callback, so the CLI
decides how to show them and tests can pass their own.
"""

from __future__ import annotations

import glob
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import images
from .errors import ImageError, UsageError


@dataclass(frozen=True)
class Task:
    """One input and where its result goes (``-`` is stdin / stdout)."""

    source: str
    dest: str
    fmt: str


@dataclass
class FileResult:
    input: str
    output: str | None
    width: int = 0
    height: int = 0
    channels: int = 0
    load_ms: float = 0.0
    compute_ms: float = 0.0
    save_ms: float = 0.0
    compile_ms: float = 0.0
    error: str | None = None
    skipped: bool = False
    values: list[float] | None = None
    out_width: int = 0
    out_height: int = 0
    dtype: str = ""
    bug: str | None = None  # the traceback of an unexpected exception (a bug in poolcli)
    stages: list[dict] | None = None  # a pipeline's stages and their milliseconds
    written: list[str] = field(default_factory=list)  # every file written (maps, --save-stages)
    notes: list[str] = field(default_factory=list)  # what was done that the user should know
    band: int = 0  # rows per band when the image was streamed (contract §10), else 0

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


@dataclass
class Expanded:
    """What the INPUT arguments name: files to process and notes about what was passed over."""

    items: list[tuple[str, str]] = field(default_factory=list)  # (path, path relative to its root)
    notes: list[str] = field(default_factory=list)
    from_folder: bool = False


def is_glob(arg: str) -> bool:
    return any(ch in arg for ch in "*?[")


def expand_inputs(args: Iterable[str], *, recursive: bool = False, exclude: str | None = None,
                  listed: Iterable[str] = ()) -> Expanded:  # fmt: skip
    """Files named by INPUT arguments: files, folders (``recursive`` descends), quoted globs, '-'.

    Files in a folder that are not images by their extension are passed over with a note; the
    folder ``exclude`` (the output folder) is never read back as input.  ``listed`` paths (from
    ``--files-from``) are taken as they are: files, or folders, never globs.
    """
    found = Expanded()
    skip_root = os.path.realpath(exclude) if exclude else None

    def take(path: str) -> None:  # a file as it is, or a folder's images
        if os.path.isdir(path):
            found.from_folder = True
            _walk(path, recursive, skip_root, found)
        else:
            found.items.append((path, os.path.basename(path)))

    for path in listed:
        take(path)
    for arg in args:
        if arg == "-":
            found.items.append(("-", "-"))
        elif not os.path.exists(arg) and is_glob(arg):
            matches = sorted(_glob(arg))
            if not matches:
                found.notes.append(f"{arg}: no file matches this pattern")
            for path in matches:
                take(path)
        else:
            take(arg)
    return found


def _glob(pattern: str) -> list[str]:
    """``glob.glob(pattern, recursive=True)``, but a ``**`` walks each folder once: symbolic
    links that loop back (``l1 -> .``) are followed once, never round and round (glob itself
    would walk them until the paths grow too long, with memory growing all the while)."""
    import fnmatch

    parts = pattern.split(os.sep)
    if "**" not in parts:
        return glob.glob(pattern)
    at = parts.index("**")
    bases = glob.glob(os.sep.join(parts[:at]) or ("/" if pattern.startswith(os.sep) else ".")) if at else ["."]
    rest = parts[at:]

    def matches(segments: list[str], pats: list[str]) -> bool:
        if not pats:
            return not segments
        if pats[0] == "**":
            return any(matches(segments[k:], pats[1:]) for k in range(len(segments) + 1))
        return bool(segments) and not segments[0].startswith(".") and fnmatch.fnmatchcase(segments[0], pats[0]) \
            and matches(segments[1:], pats[1:])  # fmt: skip

    found: list[str] = []
    for base in bases:
        if not os.path.isdir(base):
            continue
        seen: set[tuple[int, int]] = set()
        for here, dirs, files in os.walk(base, followlinks=True):
            st = os.stat(here)
            if (st.st_dev, st.st_ino) in seen:
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = os.path.relpath(here, base)
            prefix = [] if rel == "." else rel.split(os.sep)
            for name in dirs + sorted(files):
                if matches(prefix + [name], rest):
                    path = os.path.join(here, name)
                    found.append(path[2:] if base == "." and path.startswith("./") else path)
    return found


def _inside(path: str, root: str | None) -> bool:
    if root is None:
        return False
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def _walk(folder: str, recursive: bool, skip_root: str | None, found: Expanded) -> None:
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(os.path.join(here, d), skip_root))
        if not recursive:
            dirs[:] = []
        for name in sorted(files):
            path = os.path.join(here, name)
            if name.startswith(".") or _inside(path, skip_root):
                continue
            if os.path.splitext(name)[1].lower() in images.IMAGE_SUFFIXES:
                found.items.append((path, os.path.relpath(path, folder)))
            else:
                found.notes.append(f"{path}: skipped, not an image file")


NAME_FIELDS = ("stem", "tag", "ext", "n")


def check_template(template: str) -> str:
    """A ``--name`` template with vips' ``%s`` read as ``{stem}``; UsageError for an unknown
    field, a ``/``, or a name that cannot fit a file system's 255 bytes."""
    import string

    text = template.replace("%s", "{stem}")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise UsageError(f"--name {template}: {exc} (fields: {{stem}}, {{tag}}, {{ext}}, {{n}}, or %s)") from None
    for key in fields:
        if key not in NAME_FIELDS:
            raise UsageError(f"--name {template}: unknown field {{{key}}} (fields: {{stem}}, {{tag}}, {{ext}}, {{n}}, "
                             "or %s for the stem)")  # fmt: skip
    if "/" in text or os.sep in text or not text.strip() or not text.isprintable():
        raise UsageError(f"--name {template!r}: a file name, without '/' or control characters")
    if len(text.encode("utf-8", "surrogateescape")) > 200:
        raise UsageError(f"--name is {len(text.encode())} bytes; at most 200 (file names hold 255)")
    return text


SAME_FALLBACK = {"gif": "GIF would reduce the result to 256 colours", "ico": "ICO would shrink it",
                 "pcx": "PCX holds a palette", "im": "it is not written faithfully"}  # fmt: skip


def same_format(path: str) -> tuple[str, str | None]:
    """(format, note) for ``-f same``: the input's own format, or PNG (and why) where that format
    cannot hold the result faithfully or cannot be written."""
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    if path == "-" or not ext:
        return "png", None
    try:
        kept = images.format_for("x." + ext, None)
    except UsageError:
        return "png", f"{path}: written as PNG: poolcli cannot write {ext.upper()}"
    if kept in SAME_FALLBACK:
        return "png", f"{path}: written as PNG: {SAME_FALLBACK[kept]}"
    return kept, None


def plan(found: Expanded, *, output: str | None, fmt: str | None, tag: str, to_dir: bool,
         device: bool = False, name: str | None = None, maps: bool = False) -> list[Task]:  # fmt: skip
    """Destination of every input.

    One file and no ``-o`` writes ``{stem}_{tag}.{ext}`` beside it; stdin with no ``-o`` writes to
    stdout; ``-o FILE`` / ``-o -`` names the one output; ``-o DIR`` (``to_dir``) writes there,
    keeping the inputs' sub-folders.  Two inputs that would share a name keep their extensions.
    ``device``: ``-o`` is an existing device or FIFO, which every input is written through.
    """
    if device:
        return [Task(path, output, images.format_for(None, fmt)) for path, _ in found.items]
    if name is not None or fmt == "same":
        return _plan_named(found, output=output, fmt=fmt, tag=tag, to_dir=to_dir, name=name, maps=maps)
    tasks: list[Task] = []
    ext_fmt = images.format_for(None if to_dir else output, fmt)
    items, seen = [], set()
    for path, rel in found.items:  # a file named twice (a.png ./a.png, overlapping globs) runs once
        key = (path if path == "-" else os.path.realpath(path), rel)
        if key not in seen or path == "-":
            seen.add(key)
            items.append((path, rel))
    names: dict[str, int] = {}
    planned = []
    for path, rel in items:
        if path == "-":
            dest = output if (output and not to_dir) else "-"
            if to_dir:
                dest = os.path.join(output, f"stdin_{tag}{images.extension(ext_fmt)}")
        elif output and not to_dir:
            dest = output
        else:
            stem, _ = os.path.splitext(rel)
            name = f"{stem}_{tag}{images.extension(ext_fmt)}"
            dest = os.path.join(output, name) if to_dir else os.path.join(os.path.dirname(path), os.path.basename(name))
        names[dest] = names.get(dest, 0) + 1
        planned.append((path, rel, dest))
    for path, rel, dest in planned:
        if names[dest] > 1 and path != "-":
            stem, ext = os.path.splitext(rel)
            name = f"{stem}_{ext.lstrip('.').lower()}_{tag}{images.extension(ext_fmt)}"
            dest = os.path.join(output, name) if to_dir else os.path.join(os.path.dirname(path), os.path.basename(name))
        tasks.append(Task(path, dest, ext_fmt))
    return tasks


def _plan_named(found: Expanded, *, output, fmt, tag: str, to_dir: bool, name: str | None, maps: bool) -> list[Task]:
    """:func:`plan` under ``--name`` or ``-f same``: each output named by the template (default
    ``{stem}_{tag}.{ext}``), in ``-o DIR`` or beside its input; names that collide are refused
    later (:func:`check_plan`), never renamed."""
    template = name or "{stem}_{tag}.{ext}"
    tasks = []
    for path, rel in found.items:
        if fmt == "same":
            task_fmt, note = same_format(path)
            if note:
                found.notes.append(note)
        else:
            task_fmt = images.format_for(None if to_dir else output, fmt)
        if path == "-" and not to_dir and (output is None or output == "-"):
            tasks.append(Task(path, "-", task_fmt))
            continue
        if output and not to_dir and output != "-":
            tasks.append(Task(path, output, task_fmt))
            continue
        stem = os.path.splitext(os.path.basename(rel))[0] if path != "-" else "stdin"
        base = template.format(stem=stem, tag=tag, ext=images.extension(task_fmt).lstrip("."),
                               n=MAP_FIELD if maps else "0")  # fmt: skip
        folder = os.path.join(output, os.path.dirname(rel)) if to_dir else os.path.dirname(path)
        tasks.append(Task(path, os.path.join(folder, base), task_fmt))
    if name is None:  # default names (-f same): two inputs of one stem keep their extensions, as without it
        count: dict[str, int] = {}
        for t in tasks:
            count[t.dest] = count.get(t.dest, 0) + 1
        tasks = [Task(t.source, _with_source_ext(t, tag), t.fmt) if count[t.dest] > 1 and t.source != "-" else t
                 for t in tasks]  # fmt: skip
    return tasks


def _with_source_ext(task: Task, tag: str) -> str:
    stem, ext = os.path.splitext(os.path.basename(task.source))
    folder = os.path.dirname(task.dest)
    return os.path.join(folder, f"{stem}_{ext.lstrip('.').lower()}_{tag}{images.extension(task.fmt)}")


@dataclass
class Planned:
    """A run's plan: what the INPUT arguments named, and every file's task (after --shard)."""

    found: Expanded
    tasks: list[Task]
    to_dir: bool


def output_kind(output: str | None, fmt: str | None) -> str | None:
    """What ``-o`` names (contract §2), never by the number of inputs: ``"dir"`` (a trailing
    ``/`` or an existing folder), ``"device"`` (an existing device or FIFO: written through),
    ``"file"`` (an image extension, or any name when ``--format`` gives the format), ``"-"``
    (stdout) or None (no ``-o``).  Anything else is a UsageError that says what to add."""
    if output is None or output == "-":
        return output
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        return "dir"
    try:
        mode = os.stat(output).st_mode
    except OSError:
        mode = 0
    if mode and not stat.S_ISREG(mode):
        return "device"
    if os.path.splitext(os.path.basename(output))[1]:
        images.format_for(output, fmt)  # UsageError for an extension no format has
        return "file"
    if fmt is not None:
        return "file"
    raise UsageError(f"-o {output}: neither a folder nor an image file; add an extension for a file "
                     f"({output}.png) or a trailing / for a folder ({output}/)")  # fmt: skip


def plan_run(inputs: list[str], *, output: str | None, fmt: str | None, tag: str, recursive: bool = False,
             montage: str | None = None, shard: str | None = None, job=None,
             report: str | None = None, listed=(), create: bool = True,
             name: str | None = None) -> Planned:  # fmt: skip
    """Expand the inputs, name every output and check the whole run before anything is
    written (UsageError): ``-o`` usable, no two inputs on one output, no output on an input.
    ``-o DIR`` (and the sub-folders ``-r`` keeps) are created only once every check passed."""
    shard_k_n = parse_shard(shard) if shard is not None else None
    if output is not None and output != "-":  # -o 'out/%s_small.png' is -o out/ --name '%s_small.png'
        head, base = os.path.split(output)
        if "%s" in base or any("{" + f + "}" in base for f in NAME_FIELDS):
            if name is not None:
                raise UsageError(f"-o {output} holds a name template and --name gives another: give one")
            output, name = (head or ".") + os.sep, base
    if name is not None:
        name = check_template(name)
    if output is not None and output != "-" and os.path.abspath(output) == os.path.abspath(os.sep):
        raise UsageError("-o /: refusing to write into the root folder")
    kind = output_kind(output, None if fmt == "same" else fmt)
    to_dir = kind == "dir"
    if name is not None and kind == "file":
        raise UsageError(f"-o {output} names one file; --name names files in a folder: give -o DIR/ or drop --name")
    if to_dir:
        for arg in inputs:
            if arg != "-" and os.path.isdir(arg) and os.path.realpath(arg) == os.path.realpath(output):
                raise UsageError(f"-o {output} is the input folder {arg}: the results would land among the "
                                 "inputs; give another folder (e.g. -o out/)")  # fmt: skip
    found = expand_inputs(inputs, recursive=recursive, exclude=output if kind in ("dir", "file") else None,
                          listed=listed)
    many = len(found.items) > 1 or found.from_folder
    if many and output is None:
        raise UsageError("several inputs need -o DIR for their results (e.g. `-o out/`)")
    if many and output == "-":
        raise UsageError("-o - (stdout) takes one input, not several")
    if many and kind == "file":
        raise UsageError(f"-o {output} names one file, but the inputs are several; give a folder "
                         f"(-o {os.path.splitext(output)[0] or 'out'}/)")  # fmt: skip
    if many and montage:
        raise UsageError("--montage draws one input; give one file (or run once per file)")
    if montage:
        check_output_target(montage, False)
        if montage != "-" and images.format_for(montage, None) == "npy":
            raise UsageError(f"--montage {montage}: a montage is a picture; give it an image extension (.png)")
    if report and report != "-":
        check_output_target(report, False)
    if not found.items:
        return Planned(found, [], to_dir)
    if output is not None and kind != "device":
        check_output_target(output, to_dir)
    maps = getattr(job, "pipeline", None) is not None and job.pipeline.has_bank
    tasks = plan(found, output=output, fmt=fmt, tag=tag, to_dir=to_dir, device=kind == "device", name=name,
                 maps=maps)  # fmt: skip
    check_plan(tasks, job, ((montage, "--montage"), (report, "--report")))
    if shard_k_n is not None:  # after planning the whole run: every shard names files alike
        tasks = shard_tasks(tasks, *shard_k_n)
    if to_dir and create:  # every check passed: now the folder, and the sub-folders -r keeps under it
        for folder in [output] + sorted({os.path.dirname(t.dest) for t in tasks}):
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"-o {output}: cannot create the output folder {folder} "
                                 f"({exc.strerror or exc})") from None  # fmt: skip
    return Planned(found, tasks, to_dir)


def output_folders(tasks: list[Task]) -> list[str]:
    """The folders a run writes files into (for the temp-file sweeps): not stdout's, not a device's."""
    return sorted({os.path.dirname(os.path.abspath(t.dest)) for t in tasks
                   if t.dest != "-" and not images.special_file(t.dest)})  # fmt: skip


def shard_tasks(tasks: list[Task], k: int, n: int) -> list[Task]:
    """The K-th of N disjoint, deterministic slices of the tasks sorted by input path (for job
    arrays); the N shards together are exactly the whole run."""
    ordered = sorted(tasks, key=lambda t: (t.source, t.dest))
    return ordered[(k - 1) * len(ordered) // n : k * len(ordered) // n]


def parse_shard(text: str) -> tuple[int, int]:
    """(K, N) from ``K/N`` with 1 ≤ K ≤ N; UsageError otherwise."""
    import re

    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)) <= 1_000_000:
        raise UsageError(f"--shard must be K/N with 1 ≤ K ≤ N (e.g. 3/8), got '{text}'")
    return int(m.group(1)), int(m.group(2))


def check_plan(tasks: list[Task], job=None, others: tuple = ()) -> None:
    """UsageError, before anything is written, if two files of the run would be written to one
    path or a file would replace an input of the run (its own or another one).  The files are
    every task's output, a bank's maps and saved stages (with ``job``), and ``others``: (path,
    what) of the run's other files, such as (``--montage``'s path, "--montage").  Standard
    output is one path too; devices (``/dev/null``) take any number of writers."""
    inputs: dict[tuple[int, int], str] = {}
    for t in tasks:
        if t.source != "-":
            try:
                st = os.stat(t.source)
                inputs.setdefault((st.st_dev, st.st_ino), t.source)
            except OSError:
                pass  # a missing input fails alone when it is read
    writers: dict[str, str] = {}

    def claim(path: str, who: str, source: str | None) -> None:
        if path != "-" and images.special_file(path):
            return
        key = "-" if path == "-" else os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))),
                                                   os.path.basename(path))  # fmt: skip
        if key in writers:
            where = "standard output" if path == "-" else path
            raise UsageError(f"{writers[key]} and {who} would both be written to {where}; "
                             "give them separate runs or -o folders, or rename one")  # fmt: skip
        writers[key] = who
        try:
            st = os.stat(path) if path != "-" else None
        except OSError:
            return
        victim = inputs.get((st.st_dev, st.st_ino)) if st else None
        if victim is not None:
            if source is None:
                raise UsageError(f"{who} {path} is an input of this run; an input is never overwritten")
            what = "the input itself" if victim == source else f"another input of this run, {victim}"
            raise UsageError(f"{source}: its output {path} is {what}; an input is never overwritten")

    for t in tasks:
        files = [t.dest]
        if job is not None and t.dest != "-":
            has_maps = getattr(job, "pipeline", None) is not None and job.pipeline.has_bank
            colour = images.probe_colour(t.source) if has_maps and t.source != "-" else None
            files = task_files(job, t, colour, partial=True)
        for path in files:
            claim(path, t.source, t.source)
    for path, what in others:
        if path is not None:
            claim(path, what, None)


def same_file(a: str, b: str) -> bool:
    if a == "-" or b == "-":
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


# --------------------------------------------------------------------------- one file


def process_file(
    task: Task, job, *, max_pixels: int | None, png_level: int, skip_existing: bool = False, strip: bool = False,
    quality: int | None = None, montage: str | None = None, png_threads: int | None = None, inflated=None,
    stream: bool | None = None, page: int = 0, layout: str | None = None,
) -> FileResult:  # fmt: skip
    """Read, run ``job`` on, and write one image; every failure is returned, never raised.

    ``inflated`` is the input already read, checked and inflated by :class:`Prefetcher`.
    ``stream``: True streams the image in bands of rows where its formats allow, False never
    does, None (the default) streams images of more than :data:`STREAM_ABOVE` pixels where the
    formats allow (contract §10).  ``page``: the frame of a multi-frame file to read (0-based);
    ``layout``: how a ``.npy`` input's axes are laid out (``hwc``, ``chw``, None: guarded).
    """
    from .api import take_compile_ms

    name = "<stdin>" if task.source == "-" else task.source
    res = FileResult(input=name, output=None if task.dest == "-" else task.dest)
    if task.dest == "-":
        res.output = "-"
    try:
        if skip_existing and task.dest != "-" and task_done(job, task):
            res.skipped = True
            return res
        if same_file(task.source, task.dest):
            raise ImageError(f"{name}: refusing to overwrite the input with the output")
        take_compile_ms()
        src = None if page or layout == "chw" else stream_source(task, job, stream, max_pixels, montage)
        if src is not None:
            note = images.frame_note(getattr(src, "frames", 1))
            if note:
                res.notes.append(note)
            try:
                _process_streamed(task, job, src, res, png_level=png_level, strip=strip, png_threads=png_threads)
            finally:
                src.close()
            return res
        if task.source != "-":
            check_fits(task, job, name, max_pixels)
        t0 = time.perf_counter()
        pic = _read_picture(task, job, name, max_pixels, None if page else inflated, page, layout)
        note = images.frame_note(pic.frames, pic.page)
        if note:
            res.notes.append(note)
        t1 = time.perf_counter()
        res.height, res.width, res.channels = pic.pixels.shape
        res.dtype = str(pic.pixels.dtype)
        compiled = take_compile_ms()
        res.load_ms = (t1 - t0) * 1e3 - compiled
        panels = None
        if montage:  # each panel kept small as it arrives: a montage's memory does not grow with its stages
            from .teach import Panels

            panels = Panels()
            panels.append(("input", pic.pixels, pic.colour.shape[2]))
        alpha, dtype, meta = pic.alpha, pic.pixels.dtype, None if strip else pic.meta
        npy_layout = layout if pic.mode == "npy" else None  # --layout is the .npy input's, and its result's
        written = dict(dtype=dtype, fmt=task.fmt, layout=npy_layout, alpha=alpha, meta=meta, png_level=png_level,
                       quality=quality, png_threads=png_threads)  # fmt: skip
        saving = [0.0]

        def save_stage(suffix: str, result) -> None:  # --save-stages: each stage written as it finishes
            s1 = time.perf_counter()
            _write_result(job, result, suffixed(task.dest, suffix), res, **written)
            saving[0] += time.perf_counter() - s1

        out = _apply(job, pic, panels, save_stage, pixels=task.fmt != "npy")
        t2 = time.perf_counter()
        res.compile_ms = take_compile_ms()
        res.compute_ms = (t2 - t1 - saving[0]) * 1e3 - res.compile_ms
        res.compile_ms += compiled
        res.out_height, res.out_width = out.array.shape[:2]
        res.values = out.values
        res.stages = [{"stage": s, "ms": round(ms, 3)} for s, ms in out.stage_ms] or None
        if montage:
            from .teach import montage as draw_montage

            draw_montage(panels, montage)
            res.written.append(montage)
            del panels
        del pic  # peak memory: drop each full-size buffer as soon as the next one exists
        if dtype == images.np.uint16 and task.fmt != "npy" and not images.holds_16_bits(task.fmt):
            res.notes.append(images.EIGHT_BIT_NOTE.format(fmt=task.fmt.upper()))
        _write_result(job, out, task.dest, res, **written)
        del out
        t2 -= saving[0]
        compiled = take_compile_ms()
        res.save_ms = (time.perf_counter() - t2) * 1e3 - compiled
        res.compile_ms += compiled
    except ImageError as exc:
        message = str(exc)
        res.error = message if message.startswith(name) else f"{name}: {message}"
    except Exception as exc:  # noqa: BLE001 - one file's failure never stops the others
        problem = environment_problem(exc)
        if problem is not None:
            res.error = f"{name}: {problem}"
        else:  # a bug in poolcli: this file fails, the run goes on, the exit code says 70
            import traceback

            res.error = (
                f"{name}: internal error: {exc.__class__.__name__}: {_first_line(exc)} (a bug: please report it)"
            )
            res.bug = traceback.format_exc()
    return res


STREAM_ABOVE = 16_000_000  # pixels: larger images stream where their formats allow (--stream / --no-stream)
BOMB_RATIO = 256  # pixels per byte of file above which an image over --max-pixels is a decompression bomb
STREAM_ROWS = 16  # streamed, --max-pixels bounds width × this many rows (what bands and windows hold at once)


def stream_pixels(task: Task, job, stream: bool | None, max_pixels: int | None, montage: str | None) -> int | None:
    """The input's pixel count when ``task`` should stream (contract §10), else None: both
    ends are files of streamable formats, nothing needs the whole image (a montage, saved
    stages), and ``stream`` is True or the image has more than :data:`STREAM_ABOVE` pixels.
    ``max_pixels`` guards what would be held in memory, so it does not stop a streamed image.

    An image over ``max_pixels`` streams only if its file holds at least one byte per
    :data:`BOMB_RATIO` pixels: a small file that claims a huge image is a decompression bomb
    (it would keep a core and the disk busy for nothing), and the whole path refuses it by the
    limit, as before; ``--max-pixels 0`` lifts that too."""
    from . import streams

    if stream is False or task.source == "-" or task.dest == "-" or montage or task.fmt not in streams.STREAMS_OUT:
        return None
    if getattr(job, "save_stages", False):
        return None
    try:
        st = os.stat(task.source)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None  # FIFOs and devices: the whole path refuses them
    size = streams.image_size(task.source)
    if size is None:
        return None
    pixels = size[0] * size[1]
    if min(size) <= 0:
        return None  # the whole path names the problem
    if max_pixels and size[0] * STREAM_ROWS > max_pixels:
        return None  # a band of rows this wide is over the limit: read whole, the limit refuses it
    over = bool(max_pixels) and pixels > max_pixels
    if over and pixels > st.st_size * BOMB_RATIO:
        return None
    if stream is None and pixels <= STREAM_ABOVE:
        return None
    return pixels


def check_fits(task: Task, job, name: str, max_pixels: int | None) -> None:
    """ImageError, before decoding, when the input's header says the job would need more memory
    than this process may use (contract §3), naming both; nothing when the header says nothing,
    and nothing for what decoding refuses anyway (over the pixel limit, a header that claims more
    than the file holds, not a regular file): its own message says more."""
    from . import memory, streams

    try:
        st = os.stat(task.source)
        if not stat.S_ISREG(st.st_mode):
            return
        size = streams.image_size(task.source)
        if not size or min(size) <= 0 or (max_pixels and size[0] * size[1] > max_pixels):
            return
        have = memory.budget()
        npy = task.source.lower().endswith(".npy")  # any channel count; its header is cheap to read
        if have is None or (not npy and memory.estimate(job, size[0], size[1], 4) <= have[0]):
            return  # fits even with four colour channels: no need to look further (the common case)
        colour = images.probe_colour(task.source)
    except Exception:  # noqa: BLE001 - a header this cannot read: decoding names the problem
        return
    if not colour or size[0] * size[1] * colour > st.st_size * 1024:  # a claim decoding refuses itself
        return
    need = memory.estimate(job, size[0], size[1], colour)
    if need > have[0]:
        raise ImageError(f"{name}: {size[0]}x{size[1]} needs about {memory.human(need)} of memory for this "
                         f"job, more than the {memory.human(have[0])} that {have[1]} leaves")  # fmt: skip


def _probe_streams(task: Task, job, kwargs: dict) -> int | None:
    """:func:`stream_pixels` outside a file's own error handling (choosing what to prefetch):
    a file the probe cannot read is left to that file's handling, which names the problem."""
    try:
        return stream_pixels(task, job, kwargs["stream"], kwargs["max_pixels"], None)
    except Exception:  # noqa: BLE001 - never a whole run's failure: the file fails alone later
        return None


def stream_source(task: Task, job, stream: bool | None, max_pixels: int | None, montage: str | None):
    """A :class:`~poolcli.bands.Rows` reading ``task``'s input band by band when it should and
    can stream; None to read it whole."""
    from . import streams

    if stream_pixels(task, job, stream, max_pixels, montage) is None:
        return None
    try:
        return streams.open_rows(task.source, task.source, gray=job.gray)
    except streams.NotStreamable:
        return None


class _TimedRows:
    """A Rows that adds the seconds its reads take to ``seconds`` (the load time)."""

    def __init__(self, rows):
        self.rows, self.seconds = rows, 0.0
        for name in ("height", "width", "channels", "dtype", "shape"):
            setattr(self, name, getattr(rows, name))

    def read(self, n: int):
        t0 = time.perf_counter()
        try:
            return self.rows.read(n)
        finally:
            self.seconds += time.perf_counter() - t0

    def rewind(self) -> None:
        self.rows.rewind()

    def close(self) -> None:
        self.rows.close()


def _process_streamed(task: Task, job, src, res: FileResult, *, png_level: int, strip: bool,
                      png_threads: int | None) -> None:  # fmt: skip
    """:func:`process_file` band by band: the job's operations pull rows from ``src`` and each
    band of the result is converted and written as it is ready (see :mod:`poolcli.bands`);
    ``--scale normalize`` reads the result once for its range first.  Every output appears
    whole or not at all; a bank's maps are written :data:`OPEN_SINKS` files at a time."""
    from . import bands
    from .api import take_compile_ms

    np = images.np
    t0 = time.perf_counter()
    res.height, res.width, res.channels = src.height, src.width, src.channels
    res.dtype = str(src.dtype)
    timed = _TimedRows(src)
    banded = job.banded(timed, src.alpha, pixels=task.fmt != "npy")
    rows, colour = banded.rows, banded.colour
    res.out_height, res.out_width = rows.height, rows.width
    step = bands.band_height(max(rows.width, src.width), max(rows.channels, src.channels), 4)
    res.band = step
    meta = None if strip else src.meta
    source_dtype = np.dtype(src.dtype)
    target = source_dtype if source_dtype.kind == "u" else np.dtype(np.uint8)
    scale = banded.scale if source_dtype.kind == "u" or banded.scale != "clip" else "normalize"
    # what goes to each file: (path, channels of the result it holds, colour channels among them)
    outputs = [(task.dest, None, colour)]
    if banded.maps and task.fmt != "npy":  # a bank's maps: one file each, alpha in every one
        tail = list(range(colour, rows.channels))
        outputs = [(map_path(task.dest, n), [n, *tail], 1) for n in range(colour)]
    if task.fmt != "npy":
        for _, pick, _ in outputs:
            images.check_channels(len(pick) if pick else rows.channels, task.fmt)
    floats = rows.dtype.kind == "f"
    spans = [None] * len(outputs)
    s0 = 0.0
    if task.fmt != "npy" and floats and scale == "normalize":  # first pass: the range of each output
        left = rows.height
        while left > 0:
            band = rows.read(min(step, left))
            left -= band.shape[0]
            for k, (_, pick, ncolour) in enumerate(outputs):
                spans[k] = images.value_span(band if pick is None else band[:, :, pick], ncolour, spans[k])
        rows.rewind()
    for first in range(0, len(outputs), OPEN_SINKS):  # at most OPEN_SINKS files and writer threads at once
        if first:
            rows.rewind()  # the next group of a bank's maps: the rows again
        group = outputs[first : first + OPEN_SINKS]
        s0 += _write_group(task, job, rows, group, spans[first : first + OPEN_SINKS], res, colour=colour,
                           scale=scale, target=target, floats=floats, step=step, png_level=png_level, meta=meta,
                           png_threads=png_threads)  # fmt: skip
    res.written.extend(path for path, _, _ in outputs)
    total = time.perf_counter() - t0
    compiled = take_compile_ms()
    res.compile_ms += compiled
    res.load_ms = timed.seconds * 1e3
    res.save_ms = s0 * 1e3
    res.compute_ms = max(0.0, total * 1e3 - res.load_ms - res.save_ms - compiled)


OPEN_SINKS = 32  # files a streamed run writes at once (a bank of 2,000 maps: 63 passes over the rows)


def _write_group(task: Task, job, rows, outputs, spans, res: FileResult, *, colour: int, scale: str, target,
                 floats: bool, step: int, png_level: int, meta, png_threads: int | None) -> float:  # fmt: skip
    """Write ``outputs`` (path, channels picked, colour channels) from one pass over ``rows``,
    each file whole or not at all; returns the seconds spent converting and writing."""
    import contextlib

    from . import streams
    from .jobs import Result

    np = images.np
    s0 = 0.0
    with contextlib.ExitStack() as stack:
        sinks = []
        for path, pick, _ in outputs:
            fh = stack.enter_context(images.atomic_output(path))
            channels = len(pick) if pick else rows.channels
            if task.fmt == "npy":
                sample = job.npy(Result(np.zeros((1, 1, rows.channels), np.float32), colour, scale))
                sinks.append(streams.NpySink(fh, rows.width, rows.height, sample.shape[2]))
            elif task.fmt == "png":
                sink = streams.PngSink(fh, rows.width, rows.height, channels, target if floats else rows.dtype,
                                       png_level, meta, png_threads or os.cpu_count() or 1)  # fmt: skip
                stack.callback(sink.abort)
                sinks.append(sink)
            else:
                sink = streams.TiffSink(fh, rows.width, rows.height, channels, target if floats else rows.dtype, meta)
                stack.callback(sink.abort)
                sinks.append(sink)
        left = rows.height
        while left > 0:
            band = rows.read(min(step, left))
            if band.shape[0] == 0:
                raise ImageError(f"{task.source}: the image ended early")
            left -= band.shape[0]
            if res.values is None and getattr(job, "is_global", False):
                res.values = [float(v) for v in band.reshape(-1, band.shape[2])[0]]
            s1 = time.perf_counter()
            for sink, (_, pick, ncolour), span in zip(sinks, outputs, spans):  # this group's outputs
                if task.fmt == "npy":
                    sink.write(job.npy(Result(band, colour, scale)))
                    continue
                part = band if pick is None else band[:, :, pick]
                if floats:
                    part = images.to_pixels(part, target, scale, ncolour, span)
                sink.write(part)
            s0 += time.perf_counter() - s1
        s1 = time.perf_counter()
        for sink in sinks:
            sink.close()
    return s0 + time.perf_counter() - s1


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


_LOADING = ("failed to map segment", "Cannot allocate memory", "libllvmlite", "cannot open shared object")


def environment_problem(exc: BaseException) -> str | None:
    """What ran out, when ``exc`` says the machine ran out of something (memory, address
    space, file descriptors, disk, processes) rather than poolcli going wrong; else None."""
    import errno

    limit = "is a memory or address-space limit set? see `ulimit -v`; poolcli needs about 1 GB of address space"
    if isinstance(exc, MemoryError):
        return f"out of memory ({limit})"
    text = str(exc)
    if isinstance(exc, (OSError, ImportError)) and any(sign in text for sign in _LOADING):
        return f"out of memory or address space while loading compiled code ({limit})"
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOMEM:
            return f"out of memory ({limit})"
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return "too many open files (raise the limit with `ulimit -n`)"
        if exc.errno == errno.ENOSPC:
            return "no space left on the device"
        if exc.errno == errno.EAGAIN:
            return "a resource is temporarily unavailable (too many processes or threads? see `ulimit -u`)"
    return None


def _load_decoder() -> None:
    """Import Numba and load the compiled PNG row-filter decoder (both count as compile time)."""
    from .api import engine

    engine()
    images.png_picture((1, 1, 8, 0), bytes(2), {}, "warm-up")  # a 1×1 gray PNG's scanline


def _read_ahead(source: str, name: str, max_pixels: int | None, meanwhile: Callable[[], object]):
    """(file bytes, :func:`~poolcli.images.inflate_png`'s result or None) of ``source``, read on a thread while
    ``meanwhile()`` runs here; what the reading raised is raised here, after it."""
    import threading

    got: list = []

    def read() -> None:
        if hasattr(signal, "pthread_sigmask"):  # Ctrl-C is for the main thread to take
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            data = images.read_bytes(source, max_pixels)
            got.extend([data, images.inflate_png(data, name, max_pixels)])
        except Exception as exc:  # ImageError, MemoryError, or a bug: all belong to the caller
            got.append(exc)

    reader = threading.Thread(target=read, name="poolcli-read-ahead", daemon=True)
    reader.start()
    meanwhile()  # if this raises (Ctrl-C), the reader is left to finish its file unwaited for
    while reader.is_alive():  # in slices: a signal taken by another thread still gets handled
        reader.join(0.05)
    if len(got) == 1:
        raise got[0]
    return got[0], got[1]


def _read_picture(task: Task, job, name: str, max_pixels: int | None, inflated, page: int, layout: str | None):
    """The input decoded whole: from what the prefetcher inflated, else read (the first file of
    a process on a thread while Numba loads: that is compile time, not load time; never standard
    input, where a Ctrl-C that Numba's start-up swallows would leave us waiting)."""
    from .api import engine, engine_loaded

    data = None
    if inflated is None and task.source != "-" and not engine_loaded() and not page:
        data, inflated = _read_ahead(task.source, name, max_pixels, _load_decoder)
    else:
        engine()
    if inflated is not None:
        header, raw, extras = inflated
        if extras is None:  # the prefetcher inflated it; its metadata chunks are read here
            extras = images.png_extras(images.read_bytes(task.source, max_pixels), name)
        return images.png_picture(header, raw, extras, name, gray=job.gray)
    data = data if data is not None else images.read_bytes(task.source, max_pixels)
    return images.decode(data, name, gray=job.gray, max_pixels=max_pixels, page=page, layout=layout)


def _apply(job, pic, panels, save, *, pixels: bool):
    """``job`` on the picture: the montage's panels and the saved stages as they come; 8-bit
    average pooling straight to pixels where the result is written as pixels."""
    command = getattr(job, "command", "")  # jobs of tests and plug-ins may name none
    extra = {"save": save} if command == "run" else {}
    if panels is not None:
        return job.apply(pic, panels=panels, **extra)
    if pixels and command == "pool":
        return job.apply(pic, pixels=True)
    return job.apply(pic, **extra)


def _write_result(job, result, dest: str, res: FileResult, *, dtype, fmt: str, layout, alpha: bool, meta,
                  png_level: int, quality, png_threads) -> None:  # fmt: skip
    """Encode and write one result (its maps one file each), noting every file in ``res``."""
    ready = prepare(job, result, dtype, fmt, dest, layout)
    while ready:
        path, data = ready.pop(0)
        if not isinstance(data, bytes):
            data = images.encode(data, alpha, fmt, png_level=png_level, meta=meta, quality=quality, threads=png_threads)
        images.write_output(data, path)
        res.written.append(path)
        data = None


def prepare(job, out, source_dtype, fmt: str, dest: str, layout: str | None = None) -> list[tuple[str, object]]:
    """A job's result ready to encode, as (path, pixels of the input's bit depth or the raw
    .npy bytes): one item, or one per feature map (``{stem}_{tag}_{N}``) for a kernel bank's
    maps in an image format.  A .npy result is laid out as its input was (``layout``)."""
    if fmt == "npy":
        array = job.npy(out)
        if layout == "chw" and array.ndim == 3:
            array = images.np.ascontiguousarray(images.np.moveaxis(array, -1, 0))
        return [(single_path(dest), images.encode_npy(array))]
    pixels = out.array
    target = source_dtype if source_dtype.kind == "u" else images.np.uint8
    # float sources (mode F, .npy) have no natural range: clip means normalize for them
    scale = out.scale if source_dtype.kind == "u" or out.scale != "clip" else "normalize"
    if out.maps:
        if dest == "-":
            raise ImageError("a kernel bank's feature maps are written one file each: give -o, or use -f npy")
        np = images.np
        alpha = pixels[:, :, out.colour :]
        return [
            (map_path(dest, n), images.to_pixels(np.concatenate([pixels[:, :, n : n + 1], alpha], axis=2),
                                                 target, scale, 1))
            for n in range(out.colour)
        ]  # fmt: skip
    if pixels.dtype.kind == "f":
        pixels = images.to_pixels(pixels, target, scale, out.colour)
    return [(single_path(dest), pixels)]


def suffixed(path: str, suffix: str) -> str:
    """``path`` with ``suffix`` put before its extension (``a_t.png`` → ``a_t_0.png``)."""
    stem, ext = os.path.splitext(path)
    return f"{stem}{suffix}{ext}"


MAP_FIELD = "{n}"  # a --name template's map number, kept in a task's path until the maps are written


def map_path(path: str, n: int) -> str:
    """The file of map ``n`` of a bank written to ``path``: the template's ``{n}``, else ``_{n}``
    before the extension."""
    head, base = os.path.split(path)
    return os.path.join(head, base.replace(MAP_FIELD, str(n))) if MAP_FIELD in base else suffixed(path, f"_{n}")


def single_path(path: str) -> str:
    """The file of a result that is not a bank's maps: a template's ``{n}`` is 0."""
    head, base = os.path.split(path)
    return os.path.join(head, base.replace(MAP_FIELD, "0")) if MAP_FIELD in base else path


def task_files(job, task: Task, colour: int | None, *, partial: bool = False) -> list[str] | None:
    """Every file ``task`` writes for an input of ``colour`` colour channels: its output, a
    bank's maps (``_{n}``) and the stages ``--save-stages`` keeps (``.{i}-{tag}``, with their
    maps); None when the count of maps depends on a ``colour`` that is not known (``partial``:
    the files that do not depend on it)."""
    pipe = getattr(job, "pipeline", None)
    if pipe is None:
        return [single_path(task.dest)]
    image_maps = task.fmt != "npy"
    colours = pipe.colours(1 if job.gray and colour == 3 else colour) if colour else None
    files: list[str] = []
    banked = False
    for i, stage in enumerate(pipe.stages, start=1):
        banked = banked or stage.bank
        if not job.save_stages:
            continue
        path = suffixed(task.dest, f".{i}-{stage.tag}")
        if banked and image_maps:
            if colours is None and not partial:
                return None
            files += [map_path(path, n) for n in range(colours[i - 1])] if colours else []
        else:
            files.append(single_path(path))
    if pipe.has_bank and image_maps:
        if colours is None and not partial:
            return None
        return files + ([map_path(task.dest, n) for n in range(colours[-1])] if colours else [])
    return files + [single_path(task.dest)]


def task_done(job, task: Task) -> bool:
    """For ``--skip-existing``: every file ``task`` writes is there and complete (contract §2);
    a bank's maps are counted from the input's header."""
    files = task_files(job, task, images.probe_colour(task.source) if task.source != "-" else None)
    return files is not None and all(images.complete_output(f, task.fmt) for f in files)


# --------------------------------------------------------------------------- many files


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the results so far are in ``results``."""

    def __init__(self, results: list[FileResult]):
        super().__init__("interrupted")
        self.results = results


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _work(conn, tasks: list[Task], job, kwargs: dict, stop, parent: int | None, prefetched=None) -> None:
    """A worker process: run the task indices that arrive on ``conn``, in order, and send back
    ``(index, FileResult)``; ``None``, the parent's ``stop`` flag or a closed pipe ends it."""
    # The parent owns interruption: a worker finishes the file in hand, then is told to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, _parent_gone)
    try:
        die_with_parent(parent, signal.SIGHUP)
        _serve(conn, tasks, job, kwargs, stop, prefetched)
    except _ParentGone:  # the file in hand is abandoned; write_output removed its temp file
        os._exit(1)


def _serve(conn, tasks: list[Task], job, kwargs: dict, stop, prefetched) -> None:
    from .api import set_threads

    kwargs = {**kwargs, "png_threads": 1}  # one thread each: the siblings use the other cores
    set_threads(1)
    _reuse_freed_memory()  # workers from a fork server do not inherit the parent's setting
    while True:
        try:
            i = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if i is None or stop.value:
            return
        task = tasks[i]
        ahead = prefetched.take(task) if prefetched is not None else None
        res = process_file(task, job, inflated=ahead, **kwargs)
        if ahead is not None:
            prefetched.release(task)
        try:
            conn.send((i, res))
        except OSError:  # the parent is gone
            return


class _ParentGone(BaseException):
    """The process that started this worker died (SIGKILL, the OOM killer, a CI time-out)."""


def _parent_gone(signum, frame):
    raise _ParentGone


def die_with_parent(parent: int | None, sig: int) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux's
    PR_SET_PDEATHSIG), so no worker is left running, orphaned, after a hard kill of poolcli;
    exits at once if the parent is already gone."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends the worker later
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _reuse_freed_memory() -> None:
    """Have glibc's malloc keep the buffers of one image for the next instead of unmapping them.

    Each image allocates several buffers of a few hundred kB to a few MB (file bytes, inflated
    scanlines, pixels, results); by default glibc maps each one fresh and unmaps it on free, so
    every page of every buffer faults and is zeroed again: ≈ 1 ms of a 640×480 photo's ≈ 8 ms.
    Buffers up to 16 MB now come from the heap, which keeps up to 64 MB of freed memory.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, 16 << 20)
    mallopt(M_TRIM_THRESHOLD, 64 << 20)


class Prefetcher:
    """PNG inputs read, CRC-checked and inflated ahead, by a helper process forked before
    Numba loads, into shared memory that the workers forked afterwards see.

    Loading Numba keeps one core busy for ≈ 0.5 s before the workers can start; the helper
    spends that time on the other core doing the part of decoding that needs no compiled
    code (≈ 3 ms of a 640×480 photo's ≈ 9 ms).  It is killed before the workers start; an
    entry counts only once its ``done`` word is set, after its bytes are in place.  Anything
    it cannot read is left to the worker, which reads it again and reports what is wrong.
    """

    BUDGET = 192 << 20  # bytes of inflated scanlines held at most (touched pages only)

    def __init__(self, tasks: list[Task], max_pixels: int | None, skip_existing: bool):
        import mmap

        np = images.np
        self.slot = {t.dest: i for i, t in enumerate(tasks) if t.source != "-"}
        # per task: done, offset, length, width, height, bit depth, colour type, has metadata
        self.index = np.ndarray((len(tasks), 8), np.int64, buffer=mmap.mmap(-1, 64 * len(tasks)))
        self.data = mmap.mmap(-1, self.BUDGET)
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:  # the helper
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                die_with_parent(parent, signal.SIGKILL)
                self._fill(tasks, max_pixels, skip_existing)
            finally:
                os._exit(0)

    def _fill(self, tasks: list[Task], max_pixels: int | None, skip_existing: bool) -> None:
        import mmap

        offset = 0
        for i, task in enumerate(tasks):
            if task.source == "-" or (skip_existing and images.complete_output(task.dest, task.fmt)):
                continue
            try:
                got = images.inflate_png(images.read_bytes(task.source, max_pixels), task.source, max_pixels)
            except (OSError, ImageError, MemoryError):
                continue
            if got is None or set(got[2]) - set(images.METADATA_KEYS):  # interlaced, or a tRNS key:
                continue  # the worker decodes it whole
            header, raw, extras = got
            if offset + len(raw) > self.BUDGET:
                return
            self.data[offset : offset + len(raw)] = raw
            self.index[i, 1:] = (offset, len(raw), *header, bool(extras))
            self.index[i, 0] = 1
            offset += -(-len(raw) // mmap.PAGESIZE) * mmap.PAGESIZE

    def stop(self) -> None:
        """Kill the helper and wait for it: what it finished stays usable."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = 0

    def close(self) -> None:
        self.stop()
        try:
            self.data.close()
        except BufferError:
            pass  # a view of it is still alive: the memory goes when that does

    def take(self, task: Task):
        """(header, scanlines, extras) of ``task``'s input if the helper finished it, else None;
        extras is None when the file holds metadata (ICC, DPI, EXIF) to be read again from it."""
        i = self.slot.get(task.dest)
        if i is None or not self.index[i, 0]:
            return None
        offset, length = int(self.index[i, 1]), int(self.index[i, 2])
        header = tuple(int(v) for v in self.index[i, 3:7])
        return header, memoryview(self.data)[offset : offset + length], None if self.index[i, 7] else {}

    def release(self, task: Task) -> None:
        """Give ``task``'s pages back to the system once its result is written."""
        import mmap

        i = self.slot[task.dest]
        self.index[i, 0] = 0
        if hasattr(mmap, "MADV_REMOVE"):
            offset, length = int(self.index[i, 1]), int(self.index[i, 2])
            try:
                self.data.madvise(mmap.MADV_REMOVE, offset, -(-length // mmap.PAGESIZE) * mmap.PAGESIZE)
            except OSError:
                pass


def _warm(job, fmt: str) -> float:
    """Compile (or load from the cache) the job's 8-bit path, encoder included, as the workers
    will run it (on one thread each: the serial twins of the parallel loops), before they
    start; returns the milliseconds that took."""
    import numpy as np

    from .api import engine, set_threads, take_compile_ms, threads
    from .images import Picture

    take_compile_ms()
    engine()
    before = threads()
    set_threads(1)
    try:
        if job.gray:  # --gray converts while decoding
            images._luma(np.zeros((2, 2, 3), np.uint8))
        for channels in (1, 3):
            pic = Picture(np.zeros((16, 16, channels), np.uint8), False, "RGB")
            try:
                result = job.apply(pic, pixels=True) if getattr(job, "command", "") == "pool" else job.apply(pic)
                for _, ready in prepare(job, result, pic.pixels.dtype, fmt, "warm-up"):
                    if not isinstance(ready, bytes):
                        images.decode(images.encode(ready, pic.alpha, fmt), "warm-up")
            except ImageError:
                pass  # a window too large for the tiny image: nothing to warm
    finally:
        set_threads(before)
    return take_compile_ms()


def run(
    tasks: list[Task],
    job,
    *,
    jobs: int,
    max_pixels: int | None,
    png_level: int,
    skip_existing: bool = False,
    strip: bool = False,
    quality: int | None = None,
    montage: str | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    stream: bool | None = None,
    page: int = 0,
    layout: str | None = None,
    on_result: Callable[[FileResult], None] = lambda r: None,
) -> list[FileResult]:
    """Run every task; ``jobs`` > 1 uses that many worker processes, one compute thread each
    (``executor="dask"``: a Dask cluster at ``scheduler``, or an in-process one of ``jobs``
    threads, see :mod:`poolcli.dask_executor`).

    Raises :class:`Interrupted` (holding the results so far) on SIGINT/SIGTERM after in-flight
    files have finished or been discarded; no temporary file is left behind.
    """
    results: list[FileResult] = []
    kwargs = dict(max_pixels=max_pixels, png_level=png_level, skip_existing=skip_existing, strip=strip, quality=quality,
                  montage=montage, stream=stream, page=page, layout=layout)  # fmt: skip
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    if len(tasks) > 1:
        _reuse_freed_memory()  # inherited by the helper and the workers this process forks
    # standard input is this process's: a worker process reads /dev/null there
    if executor == "dask":
        here = [t for t in tasks if t.source == "-"]
    else:
        here = [t for t in tasks if jobs <= 1 or len(tasks) <= 1 or t.source == "-"]
    try:
        for task in here:
            res = process_file(task, job, **kwargs)
            results.append(res)
            on_result(res)
        rest = [t for t in tasks if t.source != "-"] if len(here) < len(tasks) else []
        if rest and executor == "dask":
            from .dask_executor import DaskExecutor

            DaskExecutor(scheduler, jobs).run(rest, job, kwargs, results, on_result)
        elif rest:
            _run_pool(rest, job, jobs, kwargs, results, on_result)
        return results
    except KeyboardInterrupt:
        raise Interrupted(results) from None
    finally:
        signal.signal(signal.SIGTERM, old_term)


def _run_pool(tasks, job, jobs, kwargs, results, on_result) -> list[FileResult]:
    """Run ``tasks`` on ``jobs`` worker processes (see :class:`_Pool`)."""
    warm_ms, ctx, prefetched = _prepare_workers(job, tasks, kwargs)
    try:
        _Pool(ctx, tasks, job, kwargs, results, on_result, warm_ms, prefetched).run(jobs)
    finally:
        if prefetched is not None:
            prefetched.close()
    return results


def _prepare_workers(job, tasks: list[Task], kwargs: dict):
    """(warm-up ms, the multiprocessing context for workers, the :class:`Prefetcher` or None):
    the parent compiles (once) or loads ``job``'s code, while the prefetcher inflates the first
    PNGs on the other core; workers forked afterwards start with both in memory."""
    import multiprocessing as mp

    if "numba" in sys.modules:
        import numba

        forkable = numba.config.THREADING_LAYER == "workqueue"
    else:  # Numba reads the same variable when it is imported
        forkable = os.environ.get("NUMBA_THREADING_LAYER") == "workqueue"
    prefetcher = None
    if forkable:  # images that will stream are read by their worker, band by band
        whole = [t for t in tasks if _probe_streams(t, job, kwargs) is None]
        prefetcher = Prefetcher(whole, kwargs["max_pixels"], kwargs["skip_existing"]) if whole else None
    try:
        warm_ms = _warm(job, tasks[0].fmt)
    finally:
        if prefetcher is not None:
            prefetcher.stop()
    if forkable:  # Numba's workqueue threads survive fork(): workers start at once
        return warm_ms, mp.get_context("fork"), prefetcher
    # GNU OpenMP aborts a forked child: workers come from a clean server process instead
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["poolcli.batch", "poolcli.api", "poolcli.engine.convolve", "poolcli.engine.pool"])
    return warm_ms, ctx, None


class _Pool:
    """Worker processes, each fed task indices over its own pipe and answering on it.

    Every worker has up to ``AHEAD`` indices sent to it, so it never waits for the parent; the
    parent only moves indices and results (no task or job is pickled per file: forked workers
    inherit them).  The first unanswered index of a worker that dies (killed, or out of
    memory) is the file it was working on: that file is run again at the end, alone in a
    fresh worker, and fails only if it kills that one too; the worker's other indices go back
    to the queue and a fresh worker takes its place.  SIGINT or SIGTERM sets ``stop``: workers
    finish the file in hand and quit, queued files are dropped, and KeyboardInterrupt is raised
    once the finished results are in.
    """

    AHEAD = 2

    def __init__(self, ctx, tasks, job, kwargs, results, on_result, warm_ms: float, prefetched=None):
        self.ctx, self.tasks, self.job, self.kwargs, self.prefetched = ctx, tasks, job, kwargs, prefetched
        self.results, self.on_result, self.warm_ms = results, on_result, warm_ms
        self.stop = ctx.RawValue("b", 0)
        # a forked worker's parent is this process; a fork server's worker's is the server
        self.parent = os.getpid() if ctx.get_start_method() == "fork" else None
        self.sent: dict = {}  # parent end of a worker's pipe → (process, indices sent, unanswered)
        self.interrupted = 0  # signals received

    # -- workers

    def _start(self):
        from collections import deque

        mine, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=_work,
            args=(theirs, self.tasks, self.job, self.kwargs, self.stop, self.parent, self.prefetched),
            daemon=True,
        )
        proc.start()
        theirs.close()
        self.sent[mine] = (proc, deque())
        return mine

    def _feed(self, conn, todo) -> None:
        """Top the worker behind ``conn`` up to AHEAD indices from ``todo``; with none left
        for it, tell it to quit.  A worker that died meanwhile is noticed by the loop."""
        _, sent = self.sent[conn]
        try:
            # a second index only while there are more files left than workers: the last
            # ones go to whichever worker is free first
            while todo and not self.interrupted and (not sent or len(sent) < self.AHEAD and len(todo) > len(self.sent)):
                sent.append(todo.popleft())
                conn.send(sent[-1])
            if not sent or self.interrupted:
                conn.send(None)
        except OSError:
            pass

    def _record(self, res: FileResult) -> None:
        res.compile_ms += self.warm_ms  # the warm-up is charged to the first file
        self.warm_ms = 0.0
        self.results.append(res)
        self.on_result(res)

    # -- the loop

    def run(self, jobs: int) -> None:
        from collections import deque

        todo = deque(range(len(self.tasks)))
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        old = {sig: signal.signal(sig, self._interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            for _ in range(min(jobs, len(todo))):
                self._feed(self._start(), todo)
            suspects = self._loop(todo, wake_r, respawn=True)
            while suspects and not self.interrupted:  # each alone, in a fresh worker
                one = deque([suspects.pop(0)])
                self._feed(self._start(), one)
                for i in self._loop(one, wake_r, respawn=False):
                    task = self.tasks[i]
                    res = FileResult(input=task.source, output=task.dest)
                    res.error = f"{task.source}: the worker process died on it (killed, or out of memory)"
                    self._record(res)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in old.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
            self._kill_all()
        if self.interrupted:
            raise KeyboardInterrupt

    def _interrupt(self, signum, frame) -> None:
        # No exception here: it could land in the middle of reading a result.  The wake-up
        # fd makes the loop's wait return, and the loop stops the workers.
        self.interrupted += 1
        self.stop.value = 1

    def _loop(self, todo, wake_r: int, *, respawn: bool) -> list[int]:
        """Collect results until every worker has quit; returns the indices whose worker died
        on them."""
        from multiprocessing.connection import wait

        died: list[int] = []
        while self.sent:
            ready = wait([*self.sent, wake_r])
            if wake_r in ready:
                os.read(wake_r, 512)
                if not self.interrupted:  # another signal with a Python handler: not ours
                    continue
                todo.clear()
                if self.interrupted > 1:  # a second Ctrl-C: stop waiting for files in hand
                    self._kill_all()
                    return died
                for conn in self.sent:
                    self._feed(conn, todo)  # tells each worker to quit after its file
                continue
            for conn in ready:
                proc, sent = self.sent[conn]
                try:
                    i, res = conn.recv()
                except (EOFError, OSError):  # the worker quit, or died
                    del self.sent[conn]
                    conn.close()
                    proc.join()
                    if proc.exitcode:  # killed: it may have left a temporary file
                        _remove_orphans([self.tasks[k] for k in sent], proc.pid)
                    if sent and not self.interrupted:  # it died on sent[0]; the rest never started
                        died.append(sent.popleft())
                        todo.extendleft(reversed(sent))
                        if respawn and todo:
                            self._feed(self._start(), todo)
                    continue
                sent.remove(i)
                self._record(res)
                self._feed(conn, todo)
        return died

    def _kill_all(self) -> None:
        """Kill the workers still running (a second Ctrl-C, or an error in the parent), wait
        for them, and remove the temporary files they leave."""
        for conn, (proc, sent) in list(self.sent.items()):
            proc.kill()
            proc.join()
            conn.close()
            _remove_orphans([self.tasks[k] for k in sent], proc.pid)
        self.sent.clear()


def _remove_orphans(tasks: list[Task], pid: int) -> None:
    """Delete the temporary files the dead worker ``pid`` may have left beside the outputs of
    ``tasks`` (their names carry the pid of the process writing them)."""
    for folder in {os.path.dirname(os.path.abspath(t.dest)) for t in tasks if t.dest != "-"}:
        for tmp in glob.glob(os.path.join(glob.escape(folder), f"{glob.escape(images.temp_prefix(pid))}*.tmp")):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def check_output_target(output: str, to_dir: bool) -> None:
    """UsageError if the ``-o`` target's folder cannot take the result."""
    if output == "-":
        return
    folder = output if to_dir else (os.path.dirname(os.path.abspath(output)) or ".")
    if to_dir:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UsageError(f"-o {output}: exists and is not a folder")
        parent = os.path.dirname(os.path.abspath(folder.rstrip(os.sep))) or "."
        if not os.path.isdir(folder) and not os.path.isdir(parent):
            raise UsageError(f"-o {output}: the folder above it does not exist")
        return
    if not os.path.exists(folder):
        raise UsageError(f"-o {output}: output folder '{os.path.dirname(output) or '.'}' does not exist")
    if not os.path.isdir(folder):
        raise UsageError(f"-o {output}: '{os.path.dirname(output)}' is not a folder")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"-o {output}: output folder '{os.path.dirname(output) or '.'}' is not writable")
