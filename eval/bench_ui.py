"""Benchmark the chat as a user meets it: start `policy-qa serve`, type questions in
headless Chromium, and time Enter → first excerpt → first token → full answer.

    .venv/bin/python eval/bench_ui.py [--backend llama] [--port 7871]

Prints the timings as JSON and saves a screenshot (citation chip opened) under
eval/results/. Needs Debian's chromium (scripts/install_browser).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_ui_browser import CHROMIUM, CHROMIUM_ARGS, STAGE_OBSERVER  # noqa: E402

QUESTIONS = [
    "我家老人想找个能看病的养老院，规划里有说法吗？",
    "孩子上学难怎么办",
    "老楼加装电梯，政府每户能补贴多少钱？",
]


def wait_until_up(url: str, proc: subprocess.Popen[bytes], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"server at {url} did not come up within {limit_s:.0f}s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="llama")
    ap.add_argument("--port", type=int, default=7871)
    ap.add_argument("--out", default=str(ROOT / "eval" / "results"))
    args = ap.parse_args()
    from playwright import sync_api

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    cmd = [sys.executable, "-m", "assistant", "serve", "--port", str(args.port), "--backend", args.backend]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{args.port}/"
    try:
        wait_until_up(url, proc, 900)
        startup_s = time.monotonic() - t0
        results = []
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 1300}, locale="zh-CN")
            page.set_default_timeout(180_000)
            page.goto(url)
            page.wait_for_selector("#question textarea")
            page.evaluate(STAGE_OBSERVER)
            for q in QUESTIONS:
                done_before = page.locator("#chat .turn[data-state=done]").count()
                box = page.locator("#question textarea")
                box.click()
                box.fill(q)
                box.press("Enter")
                page.wait_for_function(
                    f"document.querySelectorAll('#chat .turn[data-state=done]').length > {done_before}",
                    timeout=180_000,
                )
                stages = page.evaluate("window.__stages")
                results.append({"question": q, **{f"{k}_ms": round(v) for k, v in stages.items()}})
            chip = page.locator("#chat .turn[data-state=done]").first.locator("details.cite summary").first
            chip.click()
            shot = out / f"ui-{args.backend}.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
        report = {"backend": args.backend, "startup_s": round(startup_s, 1), "questions": results, "screenshot": str(shot)}
        print(json.dumps(report, ensure_ascii=False, indent=2))
        (out / f"ui-{args.backend}.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
