"""Files in and out, whatever their format: bounded reads of regular files and standard input,
atomic writes (a temp file beside the output, renamed into place), devices and FIFOs written
through, the sweep of temp files that killed writers left, and signal masking around them."""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from ..errors import ImageError
from .registry import PILLOW_DEFAULT_MAX_PIXELS

TEMP_PREFIX = ".poolcli-"  # then the writer's host and pid: {TEMP_PREFIX}{host}-{pid}-XXXXXXXX.tmp


def _host() -> str:
    import re

    name = os.uname().nodename if hasattr(os, "uname") else __import__("socket").gethostname()  # no socket import
    return re.sub(r"[^A-Za-z0-9._]", "_", name) or "host"


HOST = _host()  # in temp names: on shared storage, only this machine's dead writers are judged


def temp_prefix(pid: int | None = None) -> str:
    """The start of the names of the temp files process ``pid`` (default: this one) writes."""
    return f"{TEMP_PREFIX}{HOST}-{os.getpid() if pid is None else pid}-"


def byte_limit(max_pixels: int | None) -> int | None:
    """The most bytes an input file may have: what the largest image within ``max_pixels``
    could take (4 channels of float64, plus metadata), or None without a pixel limit."""
    return None if not max_pixels else max_pixels * 32 + (64 << 20)


def read_bytes(source: str, max_pixels: int | None = PILLOW_DEFAULT_MAX_PIXELS) -> bytes:
    """The bytes of a regular file, or of standard input for '-'; ImageError naming the file if
    it fails.  FIFOs, devices and sockets are refused without reading (opening a FIFO would
    block, a device may never end), and so is anything larger than :func:`byte_limit`."""
    limit = byte_limit(max_pixels)
    if source == "-":
        return _read_stdin(limit)
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{source}: is a directory, not an image") from None
    except PermissionError:
        raise ImageError(f"{source}: permission denied") from None
    except OSError as exc:
        raise ImageError(f"{source}: cannot read ({exc.strerror or exc})") from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):  # os.fdopen refuses a folder with its own error: say it here
        os.close(fd)
        raise ImageError(f"{source}: is a directory, not an image")
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{source}: is {_kind_of(st.st_mode)}, not a regular file; refusing to read it")
        if limit is not None and st.st_size > limit:
            raise ImageError(
                f"{source}: {st.st_size:,} bytes is more than any image within the pixel limit can take; "
                "raise it with --max-pixels, 0 lifts it"
            )
        try:
            data = fh.read()
        except OSError as exc:
            raise ImageError(f"{source}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{source}: empty file (0 bytes)")
    return data


def _kind_of(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return kind
    return "not a regular file"


def _read_stdin(limit: int | None) -> bytes:
    import sys

    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        mode = 0
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):  # /dev/zero would never end
        raise ImageError(f"<stdin>: standard input is {_kind_of(mode)}, not an image file or a pipe")
    stream = sys.stdin.buffer
    if limit is None:
        data = stream.read()
    else:
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise ImageError(
                f"<stdin>: more than {limit:,} bytes, more than any image within the pixel limit can take; "
                "raise it with --max-pixels, 0 lifts it"
            )
    if not data:
        raise ImageError("<stdin>: no data on standard input")
    return data


def head(path: str, n: int) -> bytes:
    """The first ``n`` bytes of a regular file (b"" for anything else, or when it cannot be
    read): what sniffing and header probes look at; a FIFO is never opened (it would block)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return b""
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def write_output(data: bytes, dest: str) -> None:
    """Write bytes to ``dest`` atomically (a temp file beside it, then rename), or to stdout for '-'."""
    if dest == "-":
        import sys

        try:  # every byte, or this file fails: a reader that went away is not success
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise ImageError(f"-: cannot write the image to standard output ({why})") from None
        return
    with atomic_output(dest) as fh:
        fh.write(data)


def special_file(path: str) -> bool:
    """Whether ``path`` is an existing device or FIFO (``-o /dev/null``): written through as a
    stream, never replaced by a file (contract §2)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextlib.contextmanager
def _write_through(dest: str):
    """A device or FIFO opened for writing; a FIFO is opened without blocking, so one with no
    reader fails this file (ENXIO) instead of hanging."""
    import fcntl

    try:
        fd = os.open(dest, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise ImageError(f"{dest}: a FIFO with no reader; start the reader first") from None
        raise ImageError(f"{dest}: cannot write ({exc.strerror or exc})") from None
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)  # then write as any stream
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
    except OSError as exc:
        raise ImageError(f"{dest}: cannot write ({exc.strerror or exc})") from None


@contextlib.contextmanager
def atomic_output(dest: str):
    """A binary file to write ``dest`` through: a temp file beside it, renamed into place when
    the block ends, removed if it raises (outputs appear whole or not at all).  An existing
    device or FIFO is written through instead (:func:`special_file`)."""
    if special_file(dest):
        with _write_through(dest) as fh:
            yield fh
        return
    folder = os.path.dirname(os.path.abspath(dest))
    # The temp file's name is known here before the file exists, so a Ctrl-C or SIGTERM handled
    # at any point after (even inside the call that creates it: a signal taken by another thread
    # runs its handler at the main thread's next bytecode) finds it to remove.
    made: list[str] = []
    try:
        try:
            fd = _new_temp(folder, made)
        except FileNotFoundError:
            raise ImageError(f"{dest}: output folder does not exist") from None
        except OSError as exc:
            raise ImageError(f"{dest}: cannot write to the output folder ({exc.strerror or exc})") from None
        tmp = made[0]
        os.close(fd)
        with open(tmp, "wb") as fh:  # by name: tifffile asks the file object for it
            yield fh
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, dest)
    except BaseException as exc:
        for path in made:  # gone already when the rename was done, or never made
            with contextlib.suppress(OSError):
                os.unlink(path)
        if isinstance(exc, OSError):
            raise ImageError(f"{dest}: cannot write ({exc.strerror or exc})") from None
        raise


def _new_temp(folder: str, made: list[str]) -> int:
    """A new temp file in ``folder`` (O_EXCL, mode 0600), its descriptor; its name is in ``made``
    from before it is created (another process's file of the same name is never claimed)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        made[:] = [os.path.join(folder, f"{temp_prefix()}{os.urandom(6).hex()}.tmp")]
        try:
            return os.open(made[0], flags, 0o600)
        except FileExistsError:
            made.clear()
    raise FileExistsError(errno.EEXIST, "no free temporary file name", folder)


def block_signals(*, main_only: bool = True):
    """Block SIGINT and SIGTERM in this thread (by default only in the main thread, where Python
    handles them: a helper thread passes ``main_only=False``); returns the mask to restore, or
    None where nothing was blocked."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask"):
        return None
    if main_only and threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def remove_stale_temps(folder: str) -> list[str]:
    """Delete the temporary files in ``folder`` left by poolcli processes of this machine that
    died hard (SIGKILL, power loss) while writing; their names carry the writer's host and pid.
    A file whose writer still runs, or that another machine wrote (shared storage: its pid
    means nothing here), is left alone.  Returns the paths removed."""
    import glob

    removed = []
    for tmp in glob.glob(os.path.join(glob.escape(folder), f"{TEMP_PREFIX}{glob.escape(HOST)}-*-*.tmp")):
        pid = os.path.basename(tmp)[len(TEMP_PREFIX) + len(HOST) + 1 :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            os.unlink(tmp)
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or not ours to judge): leave its file
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


