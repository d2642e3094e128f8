#!/usr/bin/env python3
"""What tracker.js costs the page it is dropped into, measured in Chromium.

    .venv/bin/python bench/tracker_cost.py            # 5 interleaved rounds, writes its table
    .venv/bin/python bench/tracker_cost.py --smoke    # one short round: proves the harness works

The page is ``tests/e2e/pages/shop.html``: Bootstrap's CSS and JS and a
Chart.js chart from the npm registry (``make widgets``), FAQ toggles, copy
buttons, a form. Each round loads it twice, once without the snippet and once
with it (the order alternates between rounds), against a real
``sessionmood serve`` on loopback, and drives the same scripted session in
both: clicks on controls the page answers, pointer moves and wheel scrolls,
typing, flushes. Figures are medians over rounds:

- **main-thread time the tracker adds**, from V8's sampling CPU profiler (CDP
  ``Profiler``, 50 µs): a sample is the tracker's when its innermost frame is
  tracker.js, or a built-in (``getComputedStyle``, ``fetch``, JSON, a forced
  layout...) called straight from tracker.js — except the page's own calls
  that reach the browser through the tracker's wrappers (canvas and WebGL
  drawing, clipboard writes, ``window.open``, media ``play``, ``pushState``),
  which would run anyway. Divided per click, per 1,000
  pointer/scroll events and per flush of ten events. (Subtracting the main
  thread's whole task time without the tracker from with it does not work:
  rendering alone varies by a second between two runs of this session.)
- **long tasks** (the Long Tasks API, > 50 ms) during the scripted session
  (after load), with and without the tracker;
- **INP-style interaction latency** (the Event Timing API: per interaction its
  longest event's duration, which Chromium rounds to 8 ms, and the precise
  ``processingEnd - processingStart``), p75 over the session's clicks, with
  and without the tracker, in a phase of its own where the page's click handler
  works for ~20 ms per click (as a real app re-rendering would), so that every
  interaction clears Event Timing's 16 ms reporting threshold in both variants;
- **bytes sent per minute of activity**: the bodies of the tracker's requests
  over the scripted session, scaled to 60 s.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import CDPSession, Page, Request, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "tests" / "e2e" / "pages"
VENDOR = ROOT / "tests" / "e2e" / "widgets" / "node_modules"
ADMIN = "bench-admin-token"
BEGIN, END = "<!-- tracker-cost:begin -->", "<!-- tracker-cost:end -->"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
# Answered controls of shop.html, clicked in turn: toggles, copy buttons with a
# toast, a chart legend, a quick save.
CONTROLS = ["#faq-hidden-q", "#faq-class-q", "#copy-1", "#save-quick", "#copy-2", "#faq-hidden-q"]
# Peers' snippets (gzip), as published: shared/research/frustration-signals.md.
PEERS = [
    ("Plausible", "< 1 KB (claim)"),
    ("Umami 2.2", "2.2 KB (minified)"),
    ("Clarity", "26.7 KB"),
    ("Sentry CDN", "≈ 35 KB (91 KB with replay)"),
    ("PostHog array.js", "122 KB (+8.5 KB lazy dead-click module)"),
]

# Event Timing and Long Tasks, collected from the page's start; the page's own
# click handler works ~20 ms, like an app re-rendering, so that every
# interaction is long enough to be reported in both variants.
OBSERVE = """
window.__bench = {events: [], longtasks: [], moves: 0, scrolls: 0, busy: false, from: 1e12};
new PerformanceObserver(l => l.getEntries().forEach(e => e.interactionId &&
  __bench.events.push({id: e.interactionId, name: e.name, duration: e.duration,
    processing: e.processingEnd - e.processingStart})))
  .observe({type: 'event', durationThreshold: 16, buffered: true});
new PerformanceObserver(l => l.getEntries().forEach(e =>
  e.startTime > __bench.from && __bench.longtasks.push(e.duration)))
  .observe({type: 'longtask', buffered: true});
addEventListener('pointermove', () => __bench.moves++, true);
addEventListener('scroll', () => __bench.scrolls++, true);
addEventListener('click', () => {
  const t = performance.now(); while (__bench.busy && performance.now() - t < 20); });
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sessionmood(tmp: Path) -> Iterator[str]:
    """``sessionmood serve`` as shipped (defaults: limits, metrics, request ids on)."""
    port = free_port()
    env = {
        **os.environ,
        "SESSIONMOOD_DATABASE_URL": f"sqlite:///{tmp / 'cost.db'}",
        "SESSIONMOOD_ADMIN_TOKEN": ADMIN,
    }
    cmd = [sys.executable, "-m", "sessionmood_server", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("sessionmood serve did not start")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)


def publishable_key(api: str, origin: str) -> str:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    r = httpx.post(f"{api}/v1/keys/generate", json={"customer_name": "bench"}, headers=admin)
    secret = r.json()["api_key"]
    r = httpx.post(
        f"{api}/v1/keys/publishable",
        json={"allowed_origins": [origin]},
        headers={"X-Api-Key": secret},
    )
    return str(r.json()["publishable_key"])


@contextlib.contextmanager
def page_server(api: str) -> Iterator[str]:
    """shop.html and its libraries; ``?tracker=1`` embeds the snippet (the key
    is filled in by ``set_key``)."""
    state: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path.lstrip("/")
            base = VENDOR if path.startswith("vendor/") else PAGES
            file = (base / path.removeprefix("vendor/")).resolve()
            if not file.is_relative_to(base.resolve()) or not file.is_file():
                self.send_error(404)
                return
            body = file.read_bytes()
            if file.suffix == ".html":
                snippet = ""
                if "tracker=1" in parts.query:
                    snippet = (
                        f'<script src="{api}/static/tracker.js" '
                        f'data-api-key="{state["key"]}"></script>'
                    )
                body = body.replace(b"<!--SNIPPET-->", snippet.encode())
            kind = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
            self.send_response(200)
            self.send_header("Content-Type", kind.get(file.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    state["key"] = publishable_key(api, origin)
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()


# -- one session ----------------------------------------------------------------


@dataclass
class Run:
    """One scripted session on one variant of the page."""

    tracker: bool
    clicks: int = 0
    cost_clicks: int = 0  # the clicks of the cost phase (before the latency phase's)
    moves_and_scrolls: int = 0
    flushes: int = 0
    tracker_ms: dict[str, float] = field(default_factory=dict)  # phase -> ms
    drawing: frozenset[str] = frozenset()
    longtasks: int = 0
    inp_p75: float = 0.0
    processing_p75: float = 0.0
    bytes_sent: int = 0
    seconds: float = 0.0


def _tracker_ms(profile: dict[str, Any], drawing: frozenset[str]) -> float:
    """Milliseconds of the samples that are the tracker's (see the module doc)."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", ())}

    def tracker_frame(node_id: int) -> bool:
        return str(nodes[node_id]["callFrame"]["url"]).endswith("/static/tracker.js")

    def counts(node_id: int) -> bool:
        frame = nodes[node_id]["callFrame"]
        if frame["url"]:
            return tracker_frame(node_id)
        name = frame["functionName"]
        if name.startswith("(") or name in drawing or node_id not in parent:
            return False  # (program), (garbage collector), (idle); the page's drawing
        return tracker_frame(parent[node_id])

    memo: dict[int, bool] = {}
    total_us = 0
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        if sample not in memo:
            memo[sample] = counts(sample)
        if memo[sample]:
            total_us += delta
    return total_us / 1000


# Page methods the tracker wraps to see answers the DOM does not show, besides
# every canvas and WebGL method: the page's own calls to them are not its cost.
WRAPPED = ("writeText", "write", "open", "play", "pushState", "replaceState")


def _drawing_methods(page: Page) -> frozenset[str]:
    """The names of the page's methods the tracker may wrap."""
    names = page.evaluate(
        """() => [CanvasRenderingContext2D, WebGLRenderingContext, WebGL2RenderingContext]
            .flatMap(c => Object.getOwnPropertyNames(c.prototype))"""
    )
    return frozenset([*names, *WRAPPED])


def _timed(cdp: CDPSession, run: Run, phase: str, action: Any) -> None:
    """The tracker's main-thread time over ``action`` (settled: the tracker's
    timers for it have fired)."""
    cdp.send("Profiler.start")
    action()
    run.tracker_ms[phase] = _tracker_ms(cdp.send("Profiler.stop")["profile"], run.drawing)


def _click_phase(page: Page, run: Run, n: int) -> None:
    for i in range(n):
        box = page.locator(CONTROLS[i % len(CONTROLS)]).bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(180)
        run.clicks += 1
    page.wait_for_timeout(1200)  # every click's verdict is in (deadMs)


def _motion_phase(page: Page, run: Run, n: int) -> None:
    before = page.evaluate("() => __bench.moves + __bench.scrolls")
    for i in range(n // 50):
        page.mouse.move(100 + (i % 2) * 400, 300, steps=40)
        page.mouse.wheel(0, 240 if i % 4 < 2 else -240)
        page.wait_for_timeout(60)
    run.moves_and_scrolls = page.evaluate("() => __bench.moves + __bench.scrolls") - before


def _flush_phase(page: Page, run: Run, n: int) -> None:
    for _ in range(n):
        # Ten queued events, then one batch out (a send and its answer).
        page.evaluate(
            """async () => { if (!window.SessionMood) return;
            for (let i = 0; i < 10; i++) SessionMood.track('hover', {duration_ms: 1200});
            await SessionMood.flush(); }"""
        )
        run.flushes += 1


def session(page: Page, cdp: CDPSession, url: str, tracker: bool, scale: int) -> Run:
    run = Run(tracker)
    sent: list[int] = []

    def count(request: Request) -> None:
        if "/v1/sessions/" in request.url:
            sent.append(len(request.post_data or ""))

    page.on("request", count)
    page.add_init_script(OBSERVE)
    page.goto(url + ("?tracker=1" if tracker else ""))
    page.wait_for_function("() => window.__chart && __chart.legend.legendHitBoxes.length")
    run.drawing = _drawing_methods(page)
    page.evaluate("() => { __bench.from = performance.now(); }")
    started = time.monotonic()
    _timed(cdp, run, "click", lambda: _click_phase(page, run, 12 * scale))
    run.cost_clicks = run.clicks
    _timed(cdp, run, "motion", lambda: _motion_phase(page, run, 500 * scale))
    page.locator("#card").click()
    page.keyboard.type("4242 4242 4242 4242", delay=60)
    _timed(cdp, run, "flush", lambda: _flush_phase(page, run, 5 * scale))
    # Interaction latency, with a page that works 20 ms per click.
    page.evaluate("() => { __bench.busy = true; __bench.events = []; }")
    _click_phase(page, run, 8 * scale)
    page.wait_for_timeout(2500)  # the periodic send takes what is left
    run.seconds = time.monotonic() - started
    bench = page.evaluate("() => __bench")
    run.longtasks = len(bench["longtasks"])
    clicks: dict[int, tuple[float, float]] = {}
    for e in bench["events"]:
        if e["name"] in ("pointerdown", "pointerup", "click", "mousedown", "mouseup"):
            d, p = clicks.get(e["id"], (0.0, 0.0))
            clicks[e["id"]] = (max(d, e["duration"]), max(p, e["processing"]))
    durations = sorted(d for d, _ in clicks.values())
    processing = sorted(p for _, p in clicks.values())
    run.inp_p75 = _p75(durations)
    run.processing_p75 = _p75(processing)
    run.bytes_sent = sum(sent)
    return run


def _p75(values: list[float]) -> float:
    return statistics.quantiles(values, n=4)[2] if len(values) >= 2 else float("nan")


# -- rounds and the table ---------------------------------------------------------------


def measure(rounds: int, scale: int) -> list[tuple[Run, Run]]:
    pairs: list[tuple[Run, Run]] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        origin = stack.enter_context(page_server(stack.enter_context(sessionmood(tmp))))
        pw = stack.enter_context(sync_playwright())
        browser = pw.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else None, args=CHROMIUM_ARGS
        )
        for r in range(rounds):
            runs: dict[bool, Run] = {}
            # Alternate which variant goes first, so drift favours neither.
            for tracker in (False, True) if r % 2 == 0 else (True, False):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Profiler.enable")
                cdp.send("Profiler.setSamplingInterval", {"interval": 50})
                runs[tracker] = session(page, cdp, f"{origin}/shop.html", tracker, scale)
                context.close()
            pairs.append((runs[False], runs[True]))
            print(f"round {r + 1}/{rounds}: {_summary(runs[False], runs[True])}", flush=True)
        browser.close()
    return pairs


def added(bare: Run, withit: Run, phase: str) -> float:
    """Main-thread ms the tracker added over ``phase`` (the page without it has
    none by construction: a check that the attribution counts nothing else)."""
    return withit.tracker_ms[phase] - bare.tracker_ms[phase]


def _summary(bare: Run, withit: Run) -> str:
    return (
        f"tracker +{added(bare, withit, 'click') / withit.cost_clicks:.3f} ms/click, "
        f"INP p75 {bare.inp_p75:.0f} -> {withit.inp_p75:.0f} ms, "
        f"long tasks {bare.longtasks} -> {withit.longtasks}"
    )


def table(pairs: list[tuple[Run, Run]]) -> str:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    withs = [w for _, w in pairs]
    bares = [b for b, _ in pairs]
    per_click = med([added(b, w, "click") / w.cost_clicks for b, w in pairs])
    per_motion = med([added(b, w, "motion") * 1000 / w.moves_and_scrolls for b, w in pairs])
    per_flush = med([added(b, w, "flush") / w.flushes for b, w in pairs])
    added_long = max(w.longtasks - b.longtasks for b, w in pairs)
    inp_bare, inp_with = med([b.inp_p75 for b in bares]), med([w.inp_p75 for w in withs])
    proc_added = med([w.processing_p75 - b.processing_p75 for b, w in pairs])
    inp_added = med([w.inp_p75 - b.inp_p75 for b, w in pairs])
    per_minute = med([w.bytes_sent * 60 / w.seconds for w in withs])
    rows = [
        ("main-thread time per click (ms)", f"{per_click:.3f}", "report"),
        ("main-thread time per 1,000 pointer/scroll events (ms)", f"{per_motion:.2f}", "report"),
        ("main-thread time per flush of 10 events (ms)", f"{per_flush:.3f}", "report"),
        ("long tasks added (most in any round)", str(added_long), "0"),
        (
            "INP-style latency p75, without -> with (ms; Chromium rounds to 8)",
            f"{inp_bare:.0f} -> {inp_with:.0f} (added {inp_added:+.0f})",
            "≤ +5",
        ),
        ("event processing p75 added (ms, unrounded)", f"{proc_added:+.2f}", "≤ +5"),
        ("bytes sent per minute of activity", f"{per_minute:,.0f}", "report"),
    ]
    ok = {
        "long tasks added (most in any round)": added_long <= 0,
        "INP-style latency p75, without -> with (ms; Chromium rounds to 8)": inp_added <= 5,
        "event processing p75 added (ms, unrounded)": proc_added <= 5,
    }
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in Chromium on "
        f"`tests/e2e/pages/shop.html` (Bootstrap, Chart.js), {len(pairs)} interleaved rounds "
        f"of the page with and without the snippet, medians. Reproduce: "
        "`.venv/bin/python bench/tracker_cost.py`.",
        "",
        "| tracker cost | measured | target | |",
        "|---|---|---|---|",
    ]
    for name, value, target in rows:
        verdict = "-" if target == "report" else ("ok" if ok[name] else "MISS")
        lines.append(f"| {name} | {value} | {target} | {verdict} |")
    lines += ["", "Peers' snippets, gzipped, as published:", ""]
    lines += [f"- {name}: {size}" for name, size in PEERS]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Put ``text`` between the tracker-cost markers of ``path`` (appended the first time)."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"{BEGIN}\n## The tracker's cost to the page\n\n{text}\n{END}"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + block + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="one short round, nothing written")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.md"))
    args = ap.parse_args()
    if not VENDOR.is_dir():
        print("the widget libraries are not installed: run `make widgets`", file=sys.stderr)
        return 2
    pairs = measure(1 if args.smoke else args.rounds, 1 if args.smoke else 5)
    text = table(pairs)
    print(text)
    if not args.smoke:
        write_section(Path(args.out), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
