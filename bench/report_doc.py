"""The pieces every BENCHMARKS.md section is built with: the records file, tables, sources, the
`Doc` being assembled (its targets table on the way)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

RECORDS = "records.json"
NOTES = Path("bench/notes")  # a person's reading of a step's figures: <step>.md, rendered under its section


def load_records(results: Path) -> dict[str, Any]:
    path = results / RECORDS
    data = json.loads(path.read_text()) if path.exists() else {}
    return {"machine": data.get("machine", {}), "steps": data.get("steps", {})}


def save_step(results: Path, name: str, record: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    """Merge one step's record (and the machine) into the records file; returns all records."""
    from training.checkpoint import atomic_write_text

    records = load_records(results)  # re-read: another run_all may have saved other steps since
    records["machine"] = machine
    records["steps"][name] = record
    atomic_write_text(results / RECORDS, json.dumps(records, indent=1))
    return records


def load_result(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def source(records: dict[str, Any], name: str, default: str) -> str:
    rec = records["steps"].get(name, {})
    wall = f", {rec['wall_s'] / 60:.1f} min" if "wall_s" in rec else ""
    cmd = re.sub(r"\S*/\.venv/bin/python\b", "python", rec.get("command", default))
    return f"`{cmd.replace('DEPLOY ', '.venv-deploy/bin/python ')}`{wall}"


def figure(name: str, alt: str) -> str:
    path = Path("docs/benchmarks") / f"{name}.png"
    return f"\n![{alt}]({path})\n" if path.exists() else ""


class Doc:
    """The document being built, with the targets table collected on the way."""

    def __init__(self, results: Path, records: dict[str, Any]) -> None:
        self.results, self.records = results, records
        self.parts: list[str] = []
        self.targets: list[list[str]] = []

    def section(self, title: str, name: str, default_cmd: str) -> dict[str, Any] | None:
        data = load_result(self.results, name)
        src = source(self.records, name, default_cmd)
        self.parts.append(f"\n## {title}\n\nSource: {src} (`{self.results}/{name}.json`).\n")
        skipped = self.records["steps"].get(name, {}).get("skipped")
        if data is None:
            self.parts.append(f"\nNot run{': ' + skipped if skipped else ''}.\n")
        return data

    def add(self, text: str) -> None:
        self.parts.append(text)

    def target(self, what: str, measured: str, met: bool | None, why: str = "", by: str = "") -> None:
        """One row of the targets table; ``why`` explains a miss under the section, ``by`` says how
        far it missed in the status column."""
        status = "not run" if met is None else ("met" if met else "**missed**" + (f" ({by})" if by else ""))
        self.targets.append([what, measured, status])
        if met is False and why:
            self.parts.append(f"\n**Target missed: {what}.** {why}\n")

    def notes(self, name: str) -> None:
        """The step's notes (``bench/notes/<name>.md``), when a person wrote some, after its figures."""
        path = NOTES / f"{name}.md"
        if path.exists():
            self.parts.append("\n" + path.read_text().strip() + "\n")
