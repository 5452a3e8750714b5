#!/usr/bin/env python3
"""Render a SLURM job template: replace every {{NAME}} placeholder and print the script.

    python jobs/render.py jobs/sample_srun.sbatch --set CONFIG=run.toml --set NODES=2 > job.sbatch
    python jobs/render.py jobs/sample_srun.sbatch --list      # placeholders and defaults

Defaults (used when a placeholder is not given with --set):

    JOB_NAME         pqml
    NODES            1
    NTASKS_PER_NODE  1
    TIME             01:00:00
    PARTITION        (empty: the #SBATCH --partition line is left out, the cluster's default is used)
    VENV             <this repository>/.venv   (absolute path)
    CONFIG           (none: must be given)

Any other placeholder a template uses must be given with --set. An #SBATCH line whose
placeholder renders empty is left out. Errors (a missing value, a --set NAME the template
does not use, a malformed value) print one line on stderr and exit with status 2.
Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PLACEHOLDER = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}")
REPO = Path(__file__).resolve().parent.parent

DEFAULTS: dict[str, str] = {
    "JOB_NAME": "pqml",
    "NODES": "1",
    "NTASKS_PER_NODE": "1",
    "TIME": "01:00:00",
    "PARTITION": "",
    "VENV": str(REPO / ".venv"),
    "SIGNAL_SECONDS": "300",
}

# Values are pasted into a bash script, some inside double quotes: keep them inert.
FORBIDDEN = set('"$`\\\n\r') | {"{{", "}}"}
VALIDATE = {
    "NODES": (re.compile(r"[1-9][0-9]*"), "a positive integer"),
    "NTASKS_PER_NODE": (re.compile(r"[1-9][0-9]*"), "a positive integer"),
    "TIME": (re.compile(r"([0-9]+-)?[0-9]+(:[0-9]{1,2}){0,2}"), "a Slurm time such as 01:30:00 or 2-00:00:00"),
    "JOB_NAME": (re.compile(r"[A-Za-z0-9_.+-]+"), "letters, digits and _ . + - only"),
    "PARTITION": (re.compile(r"[A-Za-z0-9_.,-]*"), "letters, digits and _ . , - only"),
}


class RenderError(Exception):
    """A one-line user error (exit status 2)."""


def placeholders(text: str) -> list[str]:
    """Placeholder names in order of first appearance."""
    seen: dict[str, None] = {}
    for m in PLACEHOLDER.finditer(text):
        seen.setdefault(m.group(1), None)
    return list(seen)


def parse_sets(items: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise RenderError(f"--set {item!r}: expected NAME=VALUE")
        values[name] = value
    return values


def render(text: str, values: dict[str, str]) -> str:
    """Return text with every placeholder replaced; raise RenderError on any problem."""
    names = placeholders(text)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise RenderError(
            f"unknown placeholder(s) {', '.join(unknown)}; this template uses {', '.join(names)}"
        )
    merged = {n: values[n] if n in values else DEFAULTS.get(n) for n in names}
    missing = [n for n, v in merged.items() if v is None]
    if missing:
        raise RenderError(
            f"missing value for placeholder(s) {', '.join(missing)} "
            f"(give --set {missing[0]}=...)"
        )
    for name, value in merged.items():
        bad = [f for f in FORBIDDEN if f in value]
        if bad:
            raise RenderError(f"{name}={value!r}: must not contain {' '.join(sorted(map(repr, bad)))}")
        if name in VALIDATE:
            pattern, what = VALIDATE[name]
            if not pattern.fullmatch(value):
                raise RenderError(f"{name}={value!r}: must be {what}")

    out_lines = []
    for line in text.splitlines(keepends=True):
        used = placeholders(line)
        if line.startswith("#SBATCH") and used and any(merged[n] == "" for n in used):
            continue  # e.g. no PARTITION: let the cluster pick its default
        out_lines.append(PLACEHOLDER.sub(lambda m: merged[m.group(1)], line))
    rendered = "".join(out_lines)
    if "{{" in rendered or "}}" in rendered:
        raise RenderError("rendered script still contains '{{' or '}}'")
    return rendered


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"render.py: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        description="Render a jobs/*.sbatch template to stdout.",
        epilog="Defaults: " + ", ".join(f"{k}={v or '(empty)'}" for k, v in DEFAULTS.items())
        + ", CONFIG=(required)",
    )
    parser.add_argument("template", type=Path, help="template file, e.g. jobs/sample_srun.sbatch")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                        help="value of placeholder {{NAME}} (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the template's placeholders and defaults")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)

    try:
        try:
            text = args.template.read_text(encoding="utf-8")
        except OSError as exc:
            raise RenderError(f"cannot read template {str(args.template)!r}: {exc.strerror}") from None
        if args.list:
            for name in placeholders(text):
                default = DEFAULTS.get(name)
                shown = "(required)" if default is None else (default or "(empty)")
                print(f"{name:16} {shown}")
            return 0
        rendered = render(text, parse_sets(args.sets))
    except RenderError as exc:
        print(f"render.py: error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        args.output.write_text(rendered, encoding="utf-8")
    else:
        sys.stdout.write(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
