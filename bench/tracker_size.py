"""Size of ``static/tracker.js``, the built tracker sites load: raw and gzipped.

    python bench/tracker_size.py [--budget 5120] [--file static/tracker.js]

Exits 1 when the built file gzips (level 9) to more than the budget, counted
as ``gzip -9 tracker.js`` writes it: with the file's name in the header, as
a server's precompressed copy carries it. The file
is built, minified, from ``tracker/src`` by ``make tracker``
(``tracker/build.mjs``); ``tests/test_tracker_build.py`` checks that it is
current, so this measures what the source ships.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from pathlib import Path

TRACKER = Path(__file__).resolve().parent.parent / "static" / "tracker.js"
BUDGET = 5120


def gzipped(data: bytes, name: str = "tracker.js") -> int:
    out = io.BytesIO()
    with gzip.GzipFile(name, "wb", compresslevel=9, fileobj=out, mtime=0) as f:
        f.write(data)
    return len(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=BUDGET, help="gzipped bytes")
    parser.add_argument("--file", type=Path, default=TRACKER)
    args = parser.parse_args(argv)

    raw = args.file.read_bytes()
    size = gzipped(raw, args.file.name)
    print(f"{args.file.name}")
    print(f"  built (minified)   {len(raw):6d} B")
    print(f"  gzip -9            {size:6d} B   budget {args.budget} B")
    if size > args.budget:
        print(f"OVER BUDGET by {size - args.budget} B", file=sys.stderr)
        return 1
    print(f"within budget ({args.budget - size} B to spare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
