"""Load test: N concurrent ``/ask`` clients against an already running ``policy-qa serve``.

    .venv/bin/policy-qa serve --backend extractive --port 7911 &
    .venv/bin/python eval/load.py --url http://127.0.0.1:7911 --clients 1 4 8 --seconds 60

For each N in ``--clients`` it starts N threads, each with its own gradio_client
``Client``, that ask the questions of ``--questions`` round-robin (with their
history) until ``--seconds`` have passed or ``--requests`` answers came back,
whichever is first; a request still running at the deadline is waited for (up to
``--timeout``). An error is an exception, a timeout, or an ``{"error": ...}``
reply. It prints a table and then the figures as JSON (also written to ``--out``):
clients, requests, errors, p50/p95 latency and throughput (answers per second).

Only loopback servers are accepted: the script is for measuring this machine's
own server, not for sending traffic anywhere else.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from assistant.evaluation.stats import percentile

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_QUESTIONS = ROOT / "eval" / "dev_questions.jsonl"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def loopback_url(url: str) -> str:
    """``url`` if it points at this machine (127.0.0.0/8, ::1, localhost); otherwise SystemExit."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise SystemExit(f"error: --url must be an http(s) URL, got {url!r}")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise SystemExit(
                f"error: refusing {url!r}: only a loopback server (127.0.0.1, ::1, localhost) may be loaded"
            )
    return url


def load_questions(path: Path) -> list[tuple[str, str]]:
    """``(question, history_json)`` pairs from a question file (the dev-question JSONL schema)."""
    sys.path.insert(0, str(ROOT))
    from assistant.errors import InvalidInputError
    from assistant.evaluation.questions import read_questions

    try:
        rows = read_questions(path)
    except InvalidInputError as exc:
        raise SystemExit(f"error: {exc}") from exc
    return [(q.question, json.dumps([t.to_dict() for t in q.history], ensure_ascii=False)) for q in rows]


@dataclass
class Level:
    clients: int
    latencies: list[float] = field(default_factory=list)  # successful answers, seconds
    errors: list[str] = field(default_factory=list)
    abstained: int = 0
    started: float = 0.0
    finished: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        wall = max(self.finished - self.started, 1e-9)
        distinct: list[str] = []
        for e in self.errors:
            if e not in distinct and len(distinct) < 3:
                distinct.append(e)
        return {
            "clients": self.clients,
            "requests": len(lat) + len(self.errors),
            "errors": len(self.errors),
            "abstained": self.abstained,
            "p50_s": _round(percentile(lat, 50)),
            "p95_s": _round(percentile(lat, 95)),
            "max_s": round(lat[-1], 3) if lat else None,
            "throughput_rps": round(len(lat) / wall, 3),
            "wall_s": round(wall, 2),
            "error_samples": distinct,
        }


def run_level(
    url: str,
    clients: int,
    questions: list[tuple[str, str]],
    *,
    seconds: float,
    max_requests: int | None,
    mode: str,
    timeout: float,
) -> Level:
    from gradio_client import Client

    level = Level(clients)
    next_index = [0]
    ready = threading.Barrier(clients + 1)  # everyone connected: the clock starts
    go = threading.Event()
    deadline = [0.0]

    def take() -> tuple[str, str] | None:
        with level.lock:
            sent = next_index[0]
            if max_requests is not None and sent >= max_requests:
                return None
            next_index[0] += 1
            return questions[sent % len(questions)]

    def worker() -> None:
        try:
            client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        except Exception as exc:  # the server is down or not a policy-qa app
            with level.lock:
                level.errors.append(f"connect: {type(exc).__name__}: {exc}"[:300])
            ready.wait()
            return
        ready.wait()
        go.wait()
        while time.monotonic() < deadline[0]:
            item = take()
            if item is None:
                return
            question, history = item
            t0 = time.monotonic()
            error: str | None = None
            reply: Any = None
            job = client.submit(question, history, mode, api_name="/ask")
            try:
                reply = job.result(timeout=timeout)
            except Exception as exc:
                job.cancel()
                error = f"{type(exc).__name__}: {exc}"[:300]
            elapsed = time.monotonic() - t0
            if error is None and not isinstance(reply, dict):
                error = f"unexpected reply {type(reply).__name__}"
            elif error is None and "error" in reply:
                error = f"error reply: {reply['error']}"[:300]
            with level.lock:
                if error is None:
                    level.latencies.append(elapsed)
                    level.abstained += bool(reply.get("abstained"))
                else:
                    level.errors.append(error)
            if error is not None:
                time.sleep(0.2)  # a dead server must not turn into a busy loop of errors
        with contextlib.suppress(Exception):  # closing is best effort
            client.close()

    threads = [threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    level.started = time.monotonic()
    deadline[0] = level.started + seconds
    go.set()
    for t in threads:
        t.join()
    level.finished = time.monotonic()
    return level


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'N':>3} {'requests':>9} {'errors':>7} {'p50 s':>8} {'p95 s':>8} {'max s':>8} {'answers/s':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"

        lines.append(
            f"{r['clients']:>3} {r['requests']:>9} {r['errors']:>7} {f(r['p50_s']):>8} {f(r['p95_s']):>8} "
            f"{f(r['max_s']):>8} {r['throughput_rps']:>10.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:7860", help="a running policy-qa serve (loopback only)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8], help="concurrency levels to run in turn")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long each level sends requests")
    ap.add_argument("--requests", type=int, help="stop a level after this many requests (default: time only)")
    ap.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    ap.add_argument("--mode", default="resident", choices=["resident", "hotline"])
    ap.add_argument(
        "--timeout", type=float, default=300.0, help="seconds one request may take before it counts as an error"
    )
    ap.add_argument("--out", type=Path, help="also write the JSON figures here")
    args = ap.parse_args(argv)
    url = loopback_url(args.url)
    if any(n <= 0 for n in args.clients) or args.seconds <= 0 or (args.requests is not None and args.requests <= 0):
        raise SystemExit("error: --clients, --seconds and --requests must be positive")
    questions = load_questions(args.questions)
    rows = []
    for n in args.clients:
        print(f"N={n}: {args.seconds:g} s against {url} …", file=sys.stderr, flush=True)
        level = run_level(
            url, n, questions, seconds=args.seconds, max_requests=args.requests, mode=args.mode, timeout=args.timeout
        )
        rows.append(level.summary())
    result = {
        "url": url,
        "seconds_per_level": args.seconds,
        "max_requests_per_level": args.requests,
        "questions": str(args.questions),
        "question_count": len(questions),
        "mode": args.mode,
        "levels": rows,
    }
    print(table(rows))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
