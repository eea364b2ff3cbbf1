"""Exceptions of poolcli; all are ``ValueError`` so library callers can catch one thing.

The CLI maps them to exit codes at one boundary: :class:`UsageError` (a bad option, kernel or
argument; exit 2) and :class:`ImageError` (one input that cannot be read, processed or written;
that file fails, exit 1).
"""


class PoolcliError(ValueError):
    """Base of every error poolcli raises on purpose."""


class UsageError(PoolcliError):
    """An option or argument is invalid, whatever the image."""


class ImageError(PoolcliError):
    """One image cannot be read, processed or written."""


class StdoutError(OSError):
    """Standard output cannot take what the command prints there (closed, a full disk, a reader
    that went away): one line on stderr, exit 1."""


def did_you_mean(word: str, choices, aliases: dict[str, str] | None = None) -> str:
    """``"; did you mean 'x'?"`` for the choice (or alias, given as its target) closest to
    ``word``, or "" when none is close: the one hint every unknown name gets."""
    import difflib

    aliases = aliases or {}
    close = difflib.get_close_matches(word, [*choices, *aliases], n=1, cutoff=0.5)
    return f"; did you mean '{aliases.get(close[0], close[0])}'?" if close else ""
