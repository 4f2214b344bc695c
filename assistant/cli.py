"""policy-qa: the command-line edge. Thin: parse flags, call the package, print.

Every domain error becomes one line on stderr and a non-zero exit code; no
command ever shows a traceback (set POLICY_QA_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from assistant.config import BACKENDS, EMBEDDERS, RETRIEVAL_MODES, Settings, load_settings
from assistant.errors import AssistantError, InvalidInputError
from assistant.evaluation.questions import read_questions
from assistant.models import Question
from assistant.text import validate_question

if TYPE_CHECKING:
    from assistant.answering.pipeline import Assistant

Handler = Callable[[argparse.Namespace, Settings], int]


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quiet(_: str) -> None:
    return None


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def _one_line(msg: str) -> str:
    """An error message as one printable line (undecodable bytes shown escaped)."""
    return " ".join(msg.split()).encode("utf-8", "backslashreplace").decode("utf-8")


def _has_surrogates(obj: Any) -> bool:
    """Lone surrogates are how Python carries undecodable bytes (argv, JSON escapes): not text."""
    if isinstance(obj, str):
        return any("\ud800" <= ch <= "\udfff" for ch in obj)
    if isinstance(obj, dict):
        return any(_has_surrogates(k) or _has_surrogates(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_surrogates(v) for v in obj)
    return False


def _text_arg(value: str) -> str:
    if _has_surrogates(value):
        raise InvalidInputError("问题不是有效的 UTF-8 文本 (the question is not valid UTF-8 text).")
    return value


def _output_path(path: str, flag: str) -> Path:
    """Check an output file argument before any work is done."""
    out = Path(path)
    if out.is_dir():
        raise InvalidInputError(f"{flag} {out} is a directory; give a file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"{flag} {out}: cannot create its folder ({exc.strerror or exc})") from exc
    return out


def _read_questions(path: str) -> list[Question]:
    """Questions, bad lines reported on stderr (no usable line at all is an error)."""
    problems: list[str] = []
    rows = read_questions(Path(path), problems)
    for p in problems:
        print(f"skipped {_one_line(p)}", file=sys.stderr)
    return rows


def _assistant(settings: Settings, args: argparse.Namespace) -> Assistant:
    from assistant.answering.pipeline import Assistant

    return Assistant(settings, progress=_quiet if getattr(args, "json", False) else _progress)


# ---------------------------------------------------------------- commands


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from assistant.ingest.corpus import load_corpus
    from assistant.retrieval.embedders import create_embedder
    from assistant.retrieval.store import ensure_index

    t0 = time.perf_counter()
    documents = load_corpus(settings.corpus_dir)
    embedder = create_embedder(settings)
    index, rebuilt = ensure_index(settings, documents, embedder, progress=_progress, force=args.force)
    elapsed = time.perf_counter() - t0
    units = sum(len(d.units) for d in documents)
    verb = "built" if rebuilt else "up to date"
    print(
        f"index {verb}: {settings.index_dir} — {len(documents)} document(s), {units} units, "
        f"{index.size} chunks, embedder {embedder.model_id}, {elapsed:.1f}s"
    )
    return 0


def cmd_outline(args: argparse.Namespace, settings: Settings) -> int:
    from assistant.ingest.corpus import load_corpus

    documents = load_corpus(settings.corpus_dir)
    if args.json:
        out = []
        for d in documents:
            out.append(
                {
                    **d.meta.to_dict(),
                    "chapters": [
                        {
                            "numeral": c.numeral,
                            "index": c.index,
                            "title": c.title,
                            "intro": None
                            if c.intro is None
                            else {"text": c.intro.text, "start": c.intro.start, "end": c.intro.end},
                            "articles": [
                                {"number": a.number, "title": a.title, "text": a.text, "start": a.start, "end": a.end}
                                for a in c.articles
                            ],
                        }
                        for c in d.chapters
                    ],
                }
            )
        _print_json(out)
        return 0
    for d in documents:
        print(f"《{d.meta.title}》")
        for c in d.chapters:
            print(f"{c.numeral}、{c.title}")
            if c.intro is not None:
                print(f"    （引言）{c.intro.text[:40]}…")
            for a in c.articles:
                print(f"    {a.number}. {a.title}")
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from assistant.answering.pipeline import Assistant

    assistant = Assistant(settings, progress=_quiet if (args.json or args.jsonl) else _progress)
    if args.questions:
        if not args.jsonl:
            raise InvalidInputError("--questions needs --jsonl OUT.jsonl to write the results to")
        out_path = _output_path(args.jsonl, "--jsonl")
        rows = _read_questions(args.questions)
        retriever = assistant.retriever(args.mode)
        tmp = out_path.with_name(out_path.name + ".tmp")
        written = 0
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                for row in rows:
                    try:
                        question = validate_question(row.question, settings.max_question_chars)  # at the edge
                        hits = retriever.run(question, history=row.history, k=args.k)
                    except InvalidInputError as exc:
                        print(f"skipped {row.id}: {exc}", file=sys.stderr)
                        continue
                    line = {"id": row.id, "hits": [h.to_dict() for h in hits]}
                    fh.write(json.dumps(line, ensure_ascii=False) + "\n")
                    written += 1
            if not written:
                raise InvalidInputError(f"no question in {args.questions} could be searched")
            os.replace(tmp, out_path)
        finally:
            tmp.unlink(missing_ok=True)
        print(f"wrote {written} result line(s) to {out_path}", file=sys.stderr)
        return 0
    if args.query is None:
        raise InvalidInputError("give a query, or --questions FILE.jsonl --jsonl OUT.jsonl")
    hits = assistant.search(_text_arg(args.query), k=args.k, mode=args.mode)
    if args.json:
        _print_json({"query": args.query, "mode": args.mode, "hits": [h.to_dict() for h in hits]})
        return 0
    for rank, h in enumerate(hits, 1):
        u = h.unit
        snippet = (h.chunks[0].text if h.chunks else u.text)[:80].replace("\n", " ")
        print(f"{rank}. {u.label} {u.title}  (score {h.score:.4f})\n   {snippet}…")
    return 0


def _load_history(path: str | None) -> list[dict[str, str]]:
    if not path:
        return []
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"history file {p} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read history file {p}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"history file {p} is not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise InvalidInputError(f"history file {p} must hold a JSON list of {{role, content}} turns")
    if _has_surrogates(data):
        raise InvalidInputError(f"history file {p} holds text that is not valid Unicode")
    return data


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    assistant = _assistant(settings, args)
    question = _text_arg(args.question)
    history = _load_history(args.history)
    if args.json:
        _print_json(assistant.ask(question, history=history, mode=args.mode).to_dict())
        return 0
    answer = None
    streamed: list[str] = []
    for event in assistant.stream(question, history=history, mode=args.mode):
        if event.kind == "token":
            print(event.text, end="", flush=True)
            streamed.append(event.text)
        elif event.kind == "answer":
            answer = event.answer
    assert answer is not None
    if not streamed:
        print(answer.text)
    elif "".join(streamed).strip() != answer.text.strip():
        # The model's raw words were shown as they came; the checked answer may differ.
        print("\n" + "-" * 40)
        print(answer.text)
    else:
        print()
    for i, c in enumerate(answer.citations, 1):
        print(f"  [{i}] {c.label} {c.title}：“{c.quote}”")
    if answer.formal_citation:
        print(answer.formal_citation)
    for w in answer.warnings:
        print(f"note: {w}", file=sys.stderr)
    return 0


def cmd_batch(args: argparse.Namespace, settings: Settings) -> int:
    assistant = _assistant(settings, args)
    out_path = _output_path(args.out, "--out")
    rows = _read_questions(args.questions)
    assistant.warm_up()
    done = 0
    # Appended and flushed line by line: an interrupted batch keeps what it answered.
    with out_path.open("w", encoding="utf-8") as fh:
        for row in rows:
            try:
                answer = assistant.ask(row.question, history=row.history, mode=args.mode)
            except InvalidInputError as exc:
                print(f"skipped {row.id}: {exc}", file=sys.stderr)
                continue
            fh.write(json.dumps(answer.to_dict(question_id=row.id), ensure_ascii=False) + "\n")
            fh.flush()
            done += 1
            print(f"[{done}/{len(rows)}] {row.id} {answer.timings_ms.get('total_ms', 0):.0f} ms", file=sys.stderr)
    if not done:
        raise InvalidInputError(f"no question in {args.questions} could be answered")
    print(f"wrote {done} answer(s) to {out_path}", file=sys.stderr)
    return 0


def _retrieval_eval(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    """Every retrieval mode on the questions' gold articles (eval_retrieval's scorer)."""
    from assistant.evaluation.retrieval import evaluate_retrieval, format_table, misses

    questions = _read_questions(args.questions)
    usable = []
    for q in questions:
        try:
            validate_question(_text_arg(q.question), settings.max_question_chars)
        except InvalidInputError as exc:
            print(f"skipped {q.id}: {exc}", file=sys.stderr)
            continue
        usable.append(q)
    if not any(q.gold_articles for q in usable):
        raise InvalidInputError(f"questions file {args.questions} holds no usable question with gold_articles to score")
    base = _assistant(settings, args).retriever()
    retrievers = {mode: base.with_mode(mode) for mode in RETRIEVAL_MODES}
    result = evaluate_retrieval(usable, retrievers, k_values=sorted({1, 3, args.k}))
    for r in misses(result, "hybrid", args.k):
        print(f"hybrid miss@{args.k}: {r['id']} ({r['kind']}) gold {r['gold']} got {r['retrieved']}", file=sys.stderr)
    return result, format_table(result)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    out = _output_path(args.out, "--out") if args.out else None
    if args.retrieval_only:
        result, table = _retrieval_eval(args, settings)
    else:
        from assistant.evaluation.answers import run_answer_eval

        result, table = run_answer_eval(
            settings,
            Path(args.questions),
            answers_path=Path(args.answers) if args.answers else None,
            progress=_progress,
        )
    print(table)
    if out is not None:
        out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
        print(f"figures written to {out}", file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from assistant.evaluation.bench import (
        DEFAULT_QUESTIONS,
        answerable,
        format_table,
        run_bench,
        run_concurrency,
        write_chart,
    )

    out = _output_path(args.out, "--out") if args.out else None
    chart = _output_path(args.chart, "--chart") if args.chart else None
    questions = answerable(_read_questions(args.questions or str(DEFAULT_QUESTIONS)))
    if args.limit is not None:
        if args.limit <= 0:
            raise InvalidInputError("--limit must be a positive number")
        questions = questions[: args.limit]
    if not questions:
        raise InvalidInputError("no answerable question (with gold_articles) to benchmark")
    if settings.backend != "llama":
        raise InvalidInputError("bench compares llama.cpp paths: use --backend llama")
    result = run_bench(settings, questions, fresh_states=args.fresh_states, progress=_progress)
    if args.concurrency:
        if not args.url:
            raise InvalidInputError("--concurrency needs --url http://127.0.0.1:PORT of a running 'policy-qa serve'")
        load = run_concurrency(args.url, args.concurrency, questions, args.seconds)
        result["concurrency"] = load["rows"]
        result["concurrency_table"] = load["table"]
    print(format_table(result))
    if out is not None:
        out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
        print(f"figures written to {out}", file=sys.stderr)
    if chart is not None:
        print(write_chart(result, chart), file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from ui.server import serve

    serve(settings, progress=_progress)
    return 0


def cmd_feedback(args: argparse.Namespace, settings: Settings) -> int:
    from assistant.feedback import export_feedback

    out = Path(args.out)
    fmt = args.format or ("jsonl" if out.suffix == ".jsonl" else "csv")
    n = export_feedback(settings.feedback_db, out, fmt=fmt)
    print(f"exported {n} feedback record(s) to {out}")
    return 0


# ---------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {_one_line(message)} (see '{self.prog} --help')\n")


def _add_eval_commands(sub: Any) -> None:
    """``eval`` and ``bench``: the measuring commands."""
    s = sub.add_parser("eval", help="score retrieval or answers against gold articles")
    s.add_argument("--questions", required=True)
    s.add_argument("--retrieval-only", action="store_true")
    s.add_argument("--answers", help="score these answers instead of generating them")
    s.add_argument("--backend", choices=BACKENDS)
    s.add_argument("--llm-model", dest="llm_model")
    s.add_argument("-k", type=int, default=5)
    s.add_argument("--out", help="write the figures as JSON here")

    s = sub.add_parser("bench", help="time the plain and the prefix-state paths side by side")
    s.add_argument("--questions", help="JSONL question file (default: eval/dev_questions.jsonl, answerable ones)")
    s.add_argument("--limit", type=int, help="only the first N answerable questions")
    s.add_argument("--llm-model", dest="llm_model")
    s.add_argument("--llm-path", dest="llm_path")
    s.add_argument("--fresh-states", action="store_true", help="delete this model's saved prefix states first")
    s.add_argument("--out", help="write the figures as JSON here")
    s.add_argument("--chart", help="write a PNG chart here (needs matplotlib)")
    s.add_argument("--concurrency", type=int, nargs="+", help="client counts for the load table, e.g. 1 4 8")
    s.add_argument("--url", help="a running 'policy-qa serve', e.g. http://127.0.0.1:7860 (for --concurrency)")
    s.add_argument("--seconds", type=float, default=60.0, help="seconds per concurrency level")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="policy-qa", description="瑶海政策问答 — Q&A over the Yaohai 14th Five-Year Plan proposals")
    p.add_argument("--config", help="TOML settings file (default: ./policy-qa.toml if present)")
    p.add_argument("--corpus", dest="corpus_dir", help="corpus folder (plan .txt + .toml metadata)")
    p.add_argument("--index-dir", dest="index_dir", help="where the built index lives")
    p.add_argument("--embedder", choices=EMBEDDERS)
    p.add_argument("--embedder-model", dest="embedder_model", help="local model folder for sentence-transformers")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("index", help="build (or check) the search index")
    s.add_argument("--corpus", dest="corpus_dir", default=argparse.SUPPRESS)
    s.add_argument("--force", action="store_true", help="rebuild even if up to date")

    s = sub.add_parser("outline", help="chapters and articles (the hotline's table of contents)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("search", help="find the articles for a question")
    s.add_argument("query", nargs="?")
    s.add_argument("-k", type=int, default=5)
    s.add_argument("--mode", choices=RETRIEVAL_MODES, default="hybrid")
    s.add_argument("--json", action="store_true")
    s.add_argument("--questions", help="JSONL file of questions (id, question, history)")
    s.add_argument("--jsonl", help="write one result line per question here")

    for name, helptext in (("ask", "answer one question"), ("batch", "answer a JSONL file of questions")):
        s = sub.add_parser(name, help=helptext)
        if name == "ask":
            s.add_argument("question")
            s.add_argument("--history", help="JSON file: [{role, content}, ...]")
            s.add_argument("--json", action="store_true")
        else:
            s.add_argument("--questions", required=True)
            s.add_argument("--out", required=True)
        s.add_argument("--backend", choices=BACKENDS)
        s.add_argument("--mode", choices=("resident", "hotline"))
        s.add_argument("--llm-model", dest="llm_model")
        s.add_argument("--llm-path", dest="llm_path")

    _add_eval_commands(sub)

    s = sub.add_parser("serve", help="start the Gradio chat on 127.0.0.1:7860")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--backend", choices=BACKENDS)
    s.add_argument("--llm-model", dest="llm_model")

    s = sub.add_parser("feedback", help="feedback records")
    fsub = s.add_subparsers(dest="feedback_command", required=True)
    e = fsub.add_parser("export", help="write feedback as CSV or JSONL")
    e.add_argument("--out", required=True)
    e.add_argument("--format", choices=("csv", "jsonl"))
    return p


COMMANDS: dict[str, Handler] = {
    "index": cmd_index,
    "outline": cmd_outline,
    "search": cmd_search,
    "ask": cmd_ask,
    "batch": cmd_batch,
    "eval": cmd_eval,
    "bench": cmd_bench,
    "serve": cmd_serve,
    "feedback": cmd_feedback,
}

_SETTING_FLAGS = ("corpus_dir", "index_dir", "embedder", "embedder_model", "backend", "llm_model", "llm_path", "host", "port")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "k", 1) is not None and getattr(args, "k", 1) <= 0:
        print("error: -k must be a positive number", file=sys.stderr)
        return 2
    # Operator details (a failed backend's address, a rebuilt cache) go to stderr as log lines;
    # answers themselves carry plain sentences only.
    logging.basicConfig(level=logging.WARNING, format="log: %(message)s", stream=sys.stderr, force=True)
    try:
        overrides = {name: getattr(args, name, None) for name in _SETTING_FLAGS}
        settings = load_settings(args.config, **overrides)
        return COMMANDS[args.command](args, settings)
    except AssistantError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file the user named cannot be read or written
        if os.environ.get("POLICY_QA_DEBUG"):
            raise
        where = f" ({_one_line(str(exc.filename))})" if exc.filename else ""
        print(f"error: {_one_line(exc.strerror or str(exc))}{where}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the edge: never a traceback for users
        if os.environ.get("POLICY_QA_DEBUG"):
            raise
        msg = _one_line(f"unexpected {type(exc).__name__}: {exc}")
        print(f"error: {msg} (set POLICY_QA_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
