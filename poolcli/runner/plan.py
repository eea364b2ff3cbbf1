"""Inputs → tasks: expansion of files, folders, globs and file lists, output naming (default
names, ``--name`` templates, ``-f same``), and the check of every file a run writes before any
is written (contract §2).  Nothing here reads pixels or prints."""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import io
from ..errors import UsageError
from .records import Task


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
            if io.is_image_name(name):
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
        kept = io.format_for("x." + ext, None)
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
        return [Task(path, output, io.format_for(None, fmt)) for path, _ in found.items]
    if name is not None or fmt == "same":
        return _plan_named(found, output=output, fmt=fmt, tag=tag, to_dir=to_dir, name=name, maps=maps)
    tasks: list[Task] = []
    ext_fmt = io.format_for(None if to_dir else output, fmt)
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
                dest = os.path.join(output, f"stdin_{tag}{io.extension(ext_fmt)}")
        elif output and not to_dir:
            dest = output
        else:
            stem, _ = os.path.splitext(rel)
            name = f"{stem}_{tag}{io.extension(ext_fmt)}"
            dest = os.path.join(output, name) if to_dir else os.path.join(os.path.dirname(path), os.path.basename(name))
        names[dest] = names.get(dest, 0) + 1
        planned.append((path, rel, dest))
    for path, rel, dest in planned:
        if names[dest] > 1 and path != "-":
            stem, ext = os.path.splitext(rel)
            name = f"{stem}_{ext.lstrip('.').lower()}_{tag}{io.extension(ext_fmt)}"
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
            task_fmt = io.format_for(None if to_dir else output, fmt)
        if path == "-" and not to_dir and (output is None or output == "-"):
            tasks.append(Task(path, "-", task_fmt))
            continue
        if output and not to_dir and output != "-":
            tasks.append(Task(path, output, task_fmt))
            continue
        stem = os.path.splitext(os.path.basename(rel))[0] if path != "-" else "stdin"
        base = template.format(stem=stem, tag=tag, ext=io.extension(task_fmt).lstrip("."),
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
    return os.path.join(folder, f"{stem}_{ext.lstrip('.').lower()}_{tag}{io.extension(task.fmt)}")


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
        io.format_for(output, fmt)  # UsageError for an extension no format has
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
    if job is not None:
        from ..jobs import as_job

        job = as_job(job)
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
        if montage != "-" and io.format_for(montage, None) == "npy":
            raise UsageError(f"--montage {montage}: a montage is a picture; give it an image extension (.png)")
    if report and report != "-":
        check_output_target(report, False)
    if not found.items:
        return Planned(found, [], to_dir)
    if output is not None and kind != "device":
        check_output_target(output, to_dir)
    maps = job is not None and job.has_maps
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
                   if t.dest != "-" and not io.special_file(t.dest)})  # fmt: skip


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
        if path != "-" and io.special_file(path):
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
            colour = io.probe_colour(t.source) if job.has_maps and t.source != "-" else None
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
    pipe = job.pipeline
    if pipe is None:
        return [single_path(task.dest)]
    image_maps = task.fmt != "npy"
    colours = pipe.colours(1 if job.gray and colour == 3 else colour) if colour else None
    files: list[str] = []
    banked = False
    for i, stage in enumerate(pipe.stages, start=1):
        banked = banked or stage.maps
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
    files = task_files(job, task, io.probe_colour(task.source) if task.source != "-" else None)
    return files is not None and all(io.complete_output(f, task.fmt) for f in files)


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


