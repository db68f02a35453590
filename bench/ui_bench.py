#!/usr/bin/env python3
"""UI benchmark: `cloudorch ui` over 1,000 stacks and the graph of a 5,000-resource plan.

Run:  .venv/bin/python bench/ui_bench.py  [--stacks 1000 --resources 5000]

The stacks (5 `core.null` each) are applied with `cloudorch fleet apply`; the big plan is 5,000
`core.null` resources in chains of 10 (depth 10), never applied. uvicorn serves the app in this
process; Debian's Chromium, driven by Playwright, loads each page.

Figures: the API answer time (first and warm: the overview is a snapshot refreshed in the
background; a graph is drawn once per plan file and state serial), and the time until the browser
has loaded and rendered each page. Targets: API under 0.3 s (warm), page under 2 s.
Prints one table; exits 1 if a target fails.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed_get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        r.read()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", type=int, default=1000)
    parser.add_argument("--resources", type=int, default=5000)
    args = parser.parse_args(argv)

    import uvicorn
    from playwright.sync_api import sync_playwright

    from cloudorch import api
    from cloudorch.fleet.executor import LocalExecutor
    from tests.ui.conftest import CHROMIUM_ARGS, chromium_path, free_port

    tmp = Path(tempfile.mkdtemp(prefix="ui-bench-"))
    rows: list[tuple[str, str, bool | None]] = []
    try:
        stacks = tmp / "stacks"
        for i in range(args.stacks):
            folder = stacks / f"g{i // 100:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            body = "\n".join(f"  r{j}: {{type: core.null, properties: {{values: {{n: {j}}}}}}}" for j in range(5))
            (folder / f"s{i:04d}.yaml").write_text(f"version: 1\nname: s{i:04d}\nresources:\n{body}\n")
        start = time.perf_counter()
        applied = api.fleet_run(api.fleet_discover([stacks]), "apply", LocalExecutor())
        assert applied.exit_code == 0, applied.counts()
        rows.append((f"setup: fleet apply of {args.stacks} stacks", f"{time.perf_counter() - start:.1f} s", None))

        big = tmp / "big" / "big.yaml"
        big.parent.mkdir()
        lines = []
        for i in range(args.resources):
            dep = f", depends_on: [r{i - 1}]" if i % 10 else ""
            lines.append(f"  r{i}: {{type: core.null{dep}, properties: {{values: {{n: {i}}}}}}}")
        big.write_text("version: 1\nname: big\nresources:\n" + "\n".join(lines) + "\n")

        start = time.perf_counter()
        app = api.ui_app([stacks, big], refresh_every=3600)
        read_s = time.perf_counter() - start
        rows.append((f"catalog of {args.stacks + 1} stacks read at start", f"{read_s:.1f} s", None))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        try:
            for what, path in (("overview", "/api/overview"), ("graph", "/api/graph/big")):
                first = timed_get(url + path)
                warm = min(timed_get(url + path) for _ in range(3))
                rows.append((f"API {what}: first / warm", f"{first:.3f} s / {warm:.3f} s", warm < 0.3))
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(url + "/graph/big")  # warm the browser itself
                for what, path, probe in (
                    (f"overview of {args.stacks + 1} stacks", "/", "#stacks tbody tr >> nth=-1"),
                    (f"graph of {args.resources} resources", "/graph/big", "svg g >> nth=-1"),
                ):
                    best = 1e9
                    for _ in range(3):
                        start = time.perf_counter()
                        page.goto(url + path, wait_until="load")
                        page.locator(probe).wait_for(state="attached")
                        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")  # painted
                        best = min(best, time.perf_counter() - start)
                    rows.append((f"browser: {what}", f"{best:.2f} s", best < 2.0))
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"ui bench: {args.stacks} stacks, a plan of {args.resources} resources")
    width = max(len(r[0]) for r in rows)
    ok = True
    for what, figure, passed in rows:
        ok = ok and passed is not False
        print(f"  {what:<{width}}  {figure}" + ("" if passed is None else ("  ok" if passed else "  MISSED")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
