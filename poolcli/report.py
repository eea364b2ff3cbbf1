"""The timing summary: a Rich table on stderr, and the same as JSON (contract §4)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .runner.records import FileResult


def totals(results: Sequence[FileResult], wall_ms: float) -> dict:
    done = [r for r in results if not r.error and not r.skipped]
    mp = sum(r.megapixels for r in done)
    return {
        "files": len(results),
        "failed": sum(1 for r in results if r.error),
        "skipped": sum(1 for r in results if r.skipped),
        "written": len(done),
        "wall_ms": round(wall_ms, 3),
        "megapixels": round(mp, 6),
        "compile_ms": round(sum(r.compile_ms for r in results), 3),
        "load_ms": round(sum(r.load_ms for r in done), 3),
        "compute_ms": round(sum(r.compute_ms for r in done), 3),
        "save_ms": round(sum(r.save_ms for r in done), 3),
        "images_per_s": round(len(done) / (wall_ms / 1e3), 3) if wall_ms > 0 else None,
        "megapixels_per_s": round(mp / (wall_ms / 1e3), 3) if wall_ms > 0 else None,
    }


def as_json(command: str, settings: dict, results: Sequence[FileResult], wall_ms: float) -> str:
    files = []
    for r in results:
        row = {
            "input": r.input,
            "output": None if (r.error or r.skipped) else r.output,
            "width": r.width,
            "height": r.height,
            "channels": r.channels,
            "load_ms": round(r.load_ms, 3),
            "compute_ms": round(r.compute_ms, 3),
            "save_ms": round(r.save_ms, 3),
            "compile_ms": round(r.compile_ms, 3),
            "error": r.error,
            "skipped": r.skipped,
            "output_width": r.out_width,
            "output_height": r.out_height,
        }
        if r.values is not None:
            row["values"] = r.values
        if r.stages is not None:
            row["stages"] = r.stages
        if len(r.written) > 1:
            row["written"] = r.written
        if r.notes:
            row["notes"] = r.notes
        row["streamed"] = bool(r.band)
        files.append(row)
    from . import __version__

    return json.dumps({"version": __version__, "command": command, "settings": settings, "files": files,
                       "totals": totals(results, wall_ms)})  # fmt: skip


def _rate(mp: float, ms: float) -> str:
    return f"{mp / (ms / 1e3):,.1f}" if ms > 0 and mp > 0 else "—"


def _short(value, most: int = 200) -> str:
    """A setting as the summary line shows it: a 2,000-kernel bank's text cut to its head."""
    text = str(value)
    return text if len(text) <= most else f"{text[: most - 20]}… ({len(text):,} characters)"


def render(console, command: str, settings: dict, results: Sequence[FileResult], wall_ms: float) -> None:
    """Print the summary table (and global-pooling values, and failures) to ``console``."""
    from rich.table import Table

    t = totals(results, wall_ms)
    mp = t["megapixels"]
    shown = [(k, v) for k, v in settings.items() if v not in (None, False)]
    described = " · ".join(k if v is True else f"{k} {_short(v)}" for k, v in shown)
    console.print(f"poolcli {command}: {described}", highlight=False, markup=False)
    table = Table(box=None, pad_edge=False)
    table.add_column("stage")
    table.add_column("ms", justify="right")
    table.add_column("MP/s", justify="right")
    if t["compile_ms"] > 0:
        table.add_row("compile", f"{t['compile_ms']:,.1f}", "")
    for stage in ("load", "compute", "save"):
        ms = t[f"{stage}_ms"]
        table.add_row(stage, f"{ms:,.1f}", _rate(mp, ms))
    table.add_row("wall", f"{t['wall_ms']:,.1f}", _rate(mp, t["wall_ms"]))
    console.print(table)
    if len(results) == 1 and not results[0].error and not results[0].skipped:
        r = results[0]
        for i, stage in enumerate(r.stages or [], start=1):
            console.print(f"  {i}. {stage['stage']}  {stage['ms']:,.1f} ms", highlight=False, markup=False)
        more = f" (+{len(r.written) - 1} more files)" if len(r.written) > 1 else ""
        shown = r.output if r.output in r.written or not r.written else r.written[-1]
        console.print(
            f"{r.input} {r.width}x{r.height}x{r.channels} {r.dtype} → {shown} {r.out_width}x{r.out_height} (WxH){more}",
            highlight=False,
            markup=False,
        )
        if r.band:  # the whole image in memory otherwise, as always
            console.print(f"streamed in bands of {r.band} rows", highlight=False, markup=False)
    else:
        line = f"files {t['files']} · written {t['written']} · failed {t['failed']} · skipped {t['skipped']}"
        if t["images_per_s"]:
            line += f" · {t['images_per_s']:,.1f} images/s · {mp:,.2f} MP"
        streamed = sum(1 for r in results if r.band and not r.error)
        if streamed:
            line += f" · streamed {streamed}"
        console.print(line, highlight=False, markup=False)
    for r in results:
        if r.values is not None and not r.error:
            vals = ", ".join(f"{v:.6g}" for v in r.values)
            console.print(f"{r.input}: global values per channel: [{vals}]", highlight=False, markup=False)
    failed = [r for r in results if r.error]
    if failed and len(results) > 1:
        console.print(f"failed ({len(failed)}):", highlight=False, markup=False)
        for r in failed:
            console.print(f"  {r.error}", highlight=False, markup=False)
