"""Size of ``static/tracker.js``: raw, gzipped as shipped, and minified + gzipped.

    python bench/tracker_size.py [--budget 4096] [--minifier auto|builtin|terser]

Exits 1 when the file *as shipped* (readable source, comments and all)
gzips to more than the budget. ``terser`` runs through ``npx --yes``; when
Node, npm or the network is missing, ``auto`` falls back to a built-in
comment and whitespace stripper, so the check itself never needs the network.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

TRACKER = Path(__file__).resolve().parent.parent / "static" / "tracker.js"
BUDGET = 4096
# A `/` after one of these starts a regex literal, not a division.
_REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^") | {""}


def gzipped(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def strip(source: str) -> str:
    """Drop comments, indentation and blank lines; keep strings, regexes and newlines (ASI)."""
    out: list[str] = []
    i, n = 0, len(source)
    last = ""  # last significant character emitted
    while i < n:
        c = source[i]
        nxt = source[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            while i < n and source[i] != "\n":
                i += 1
        elif c == "/" and nxt == "*":
            end = source.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c in "'\"`" or (c == "/" and last in _REGEX_AFTER):
            j, in_class = i + 1, False
            while j < n:
                d = source[j]
                if d == "\\":
                    j += 2
                    continue
                if c == "/" and d == "[":
                    in_class = True
                elif c == "/" and d == "]":
                    in_class = False
                elif d == c and not in_class:
                    break
                j += 1
            out.append(source[i : j + 1])
            last, i = c, j + 1
        else:
            out.append(c)
            if not c.isspace():
                last = c
            i += 1
    lines = (line.strip() for line in "".join(out).splitlines())
    return "\n".join(line for line in lines if line) + "\n"


def terser(path: Path) -> str | None:
    npx = shutil.which("npx")
    if npx is None:
        return None
    try:
        done = subprocess.run(
            [npx, "--yes", "terser", str(path), "--compress", "--mangle"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 and done.stdout.strip() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=BUDGET, help="gzipped bytes, as shipped")
    parser.add_argument("--minifier", choices=("auto", "builtin", "terser"), default="auto")
    parser.add_argument("--file", type=Path, default=TRACKER)
    args = parser.parse_args(argv)

    raw = args.file.read_bytes()
    minified, used = None, "builtin stripper"
    if args.minifier != "builtin":
        minified = terser(args.file)
        if minified is not None:
            used = "terser"
        elif args.minifier == "terser":
            print("terser is unavailable (no npx or no network)", file=sys.stderr)
            return 2
    if minified is None:
        minified = strip(raw.decode())
    shipped = gzipped(raw)

    print(f"{args.file.name}")
    print(f"  raw                {len(raw):6d} B")
    print(f"  gzip -9 (shipped)  {shipped:6d} B   budget {args.budget} B")
    print(f"  minified + gzip    {gzipped(minified.encode()):6d} B   ({used})")
    if shipped > args.budget:
        print(f"OVER BUDGET by {shipped - args.budget} B", file=sys.stderr)
        return 1
    print(f"within budget ({args.budget - shipped} B to spare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
