"""The pieces every BENCHMARKS.md section is built with: the committed step results, tables,
sources, the `Doc` being assembled (its targets table and its detail pages on the way).

A step's result is one small JSON file, ``bench/results/<step>.json``, committed with the code:
``{"step", "record": {command, exit_code, wall_s}, "machine": {...}, "data": <the figures>}``.
Files without that envelope (the older ``runs/bench/results/*.json`` layout, whose records and
single machine lived in ``records.json``) are still read, so old figures render the same.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

LEGACY_RECORDS = "records.json"  # the older layout: every step's record and one machine
NOTES = Path("bench/notes")  # a person's reading of a step's figures: <step>.md, rendered under its section
PAGES = Path("docs/benchmarks")  # the detail pages and figures, beside BENCHMARKS.md


def machine_text(m: dict[str, Any]) -> str:
    """What a step was measured on, in one line."""
    return (
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores ({m.get('torch_threads', '?')} torch threads), "
        f"Python {m.get('python', '?')}, torch {m.get('torch', '?')}, {m.get('platform', '?')}; {m.get('date', '?')}"
    )


def save_step(
    results: Path, name: str, record: dict[str, Any], machine: dict[str, Any], data: Any | None
) -> None:
    """Write one step's committed result (record, machine and figures) atomically; a step that
    produced no figures (failed, skipped) keeps its previous figures and records why."""
    from common.files import atomic_write_text

    path = results / f"{name}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    if data is None:
        if "data" not in old:
            old = {"step": name, "data": None}
        old["last_attempt"] = record
        body = old
    else:
        body = {"step": name, "record": record, "machine": machine, "data": data}
    atomic_write_text(path, json.dumps(body, indent=1) + "\n")


class Results:
    """The figures of every step under one folder, each with its record and machine."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        legacy = folder / LEGACY_RECORDS
        old = json.loads(legacy.read_text()) if legacy.exists() else {}
        self.legacy_machine: dict[str, Any] = old.get("machine", {})
        self.legacy_steps: dict[str, Any] = old.get("steps", {})

    def _raw(self, name: str) -> dict[str, Any] | None:
        path = self.folder / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def data(self, name: str) -> Any | None:
        raw = self._raw(name)
        if raw is None:
            return None
        return raw.get("data") if "data" in raw and "step" in raw else raw

    def record(self, name: str) -> dict[str, Any]:
        raw = self._raw(name)
        if raw is not None and "step" in raw and "data" in raw:
            return raw.get("record") or raw.get("last_attempt") or {}
        return self.legacy_steps.get(name, {})

    def machine(self, name: str) -> dict[str, Any] | None:
        raw = self._raw(name)
        return raw.get("machine") if raw is not None and "step" in raw else None


def table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def command_text(record: dict[str, Any], default: str) -> str:
    cmd = re.sub(r"\S*/\.venv/bin/python\b", "python", record.get("command", default))
    # recorded before bench/ was a package its scripts import from: the same command, as it runs now
    cmd = cmd.replace("python bench/space_vs_grid.py", "python -m bench.space_vs_grid")
    return f"`{cmd.replace('DEPLOY ', '.venv-deploy/bin/python ')}`"


def source(record: dict[str, Any], default: str) -> str:
    wall = f", {record['wall_s'] / 60:.1f} min" if "wall_s" in record else ""
    return f"{command_text(record, default)}{wall}"


def figure(name: str, alt: str, prefix: Path = PAGES) -> str:
    """A committed figure, linked from BENCHMARKS.md (``prefix`` docs/benchmarks) or from a page
    beside it (``prefix`` empty)."""
    if not (PAGES / f"{name}.png").exists():
        return ""
    return f"\n![{alt}]({(prefix / f'{name}.png').as_posix()})\n"


class Doc:
    """The document being built, with the targets table and the detail pages collected on the way."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self.parts: list[str] = []
        self.targets: list[list[str]] = []
        self.pages: dict[str, list[str]] = {}

    def section(self, title: str, name: str, default_cmd: str) -> Any | None:
        data = self.results.data(name)
        rec = self.results.record(name)
        m = self.results.machine(name)
        on = f", on {machine_text(m)}" if m else ""
        where = (self.results.folder / f"{name}.json").as_posix()
        self.parts.append(f"\n## {title}\n\nSource: {source(rec, default_cmd)}{on} (`{where}`).\n")
        skipped = rec.get("skipped")
        if data is None:
            self.parts.append(f"\nNot run{': ' + skipped if skipped else ''}.\n")
        return data

    def add(self, text: str) -> None:
        self.parts.append(text)

    def page(self, name: str, title: str, text: str) -> str:
        """Add ``text`` to the detail page ``docs/benchmarks/<name>.md`` (titled ``title`` when
        new); returns the link BENCHMARKS.md shows for it."""
        parts = self.pages.setdefault(name, [f"# {title}\n\nGenerated by `python -m bench.run_all` with "
                                             "BENCHMARKS.md, of which this page holds the details.\n"])  # fmt: skip
        parts.append(text)
        return f"[docs/benchmarks/{name}.md](docs/benchmarks/{name}.md)"

    def target(self, what: str, measured: str, met: bool | None, why: str = "", by: str = "") -> None:
        """One row of the targets table; ``why`` explains a miss under the section, ``by`` says how
        far it missed in the status column."""
        status = "not run" if met is None else ("met" if met else "**missed**" + (f" ({by})" if by else ""))
        self.targets.append([what, measured, status])
        if met is False and why:
            self.parts.append(f"\n**Target missed: {what}.** {why}\n")

    def notes(self, name: str, page: str | None = None) -> None:
        """The step's notes (``bench/notes/<name>.md``), when a person wrote some, after its figures
        (on the detail page ``page`` when given)."""
        path = NOTES / f"{name}.md"
        if path.exists():
            text = "\n" + path.read_text().strip() + "\n"
            (self.pages[page] if page else self.parts).append(text)
