"""What each sub-command does; every user error ends as one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from vlmtui.engine.selection import model_ids
from vlmtui.engine.setup import GuardOverrides, Session, prepare_session
from vlmtui.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, session_exit_code
from vlmtui.reports.records import LogError
from vlmtui.suite.loader import SuiteError

_STOP_SIGNALS = {
    signal.SIGINT: "interrupted (Ctrl-C)",
    signal.SIGTERM: "terminated (SIGTERM)",
    signal.SIGHUP: "the terminal hung up (SIGHUP)",
}


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print one error line and return the exit code."""
    print(f"vlmtui: error: {message}", file=sys.stderr)
    return code


def demo_suite_path() -> Path:
    """The demo suite: from the source tree when run from a checkout, else the copy in the wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "suites" / "demo.toml", package / "_bundled" / "suites" / "demo.toml"):
        if candidate.exists():
            return candidate
    raise SuiteError("the demo suite is missing from this installation (reinstall vlmtui)")


def _overrides(args: argparse.Namespace) -> GuardOverrides:
    return GuardOverrides(budget=args.budget, warn=args.warn, cleanup=args.cleanup, abort=args.abort,
                          sample_ms=args.sample_ms)


async def _run_headless(session: Session, output_format: str = "text") -> int:
    from vlmtui.ui.headless import HeadlessPrinter, JsonlPrinter
    from vlmtui.ui.progress_line import ProgressLine

    scheduler = session.scheduler
    if output_format == "jsonl":
        scheduler.subscribe(JsonlPrinter(sys.stdout, sys.stderr))
    else:
        scheduler.subscribe(HeadlessPrinter())
    if not sys.stdout.isatty() and sys.stderr.isatty():
        # Records go to a pipe or a file; the person at the terminal still sees how far the run is.
        scheduler.subscribe(ProgressLine(sys.stderr))
    stopped_by: list[str] = []
    loop = asyncio.get_running_loop()

    def on_signal(reason: str) -> None:
        stopped_by.append(reason)
        scheduler.stop(reason)

    for signum, reason in _STOP_SIGNALS.items():
        loop.add_signal_handler(signum, on_signal, reason)
    try:
        counts = await scheduler.run()
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    return session_exit_code(counts, interrupted=bool(stopped_by))


def _start(args: argparse.Namespace, suite: str | Path | None) -> int:
    if args.resume and args.rerun_failed:
        return fail("--resume and --rerun-failed cannot be used together")
    try:
        session = prepare_session(
            suite, overrides=_overrides(args), log_path=args.log, resume=args.resume,
            rerun_failed=args.rerun_failed, skip_missing=args.skip_missing,
            only=model_ids(args.only), skip=model_ids(args.skip), force=args.force,
        )
    except (SuiteError, LogError) as exc:
        return fail(str(exc))
    headless = (args.headless or args.format != "text" or not sys.stdout.isatty()
                or os.environ.get("VLMTUI_HEADLESS") == "1")
    try:
        if headless:
            code = asyncio.run(_run_headless(session, args.format))
        else:
            from vlmtui.ui.tui.app import run_app

            code = run_app(session.engine, log_path=session.log.path, on_hangup=session.log.close,
                           ascii_only=args.ascii, mouse=not args.no_mouse, preview=session.engine.preview)
    finally:
        session.log.close()
    print(f"session log: {session.log.path}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """``vlmtui run SUITE``."""
    if args.suite is None and not (args.resume or args.rerun_failed):
        return fail("name a suite file: vlmtui run SUITE.toml")
    if args.download_only:
        return _download_only(args)
    return _start(args, args.suite)


def _download_only(args: argparse.Namespace) -> int:
    """``vlmtui run --download-only SUITE`` (vlmtui/download_only.py)."""
    from vlmtui.download_only import download_only

    if args.suite is None:
        return fail("--download-only needs a suite file: vlmtui run --download-only SUITE.toml")
    try:
        return download_only(args.suite, _overrides(args), only=model_ids(args.only), skip=model_ids(args.skip))
    except SuiteError as exc:
        return fail(str(exc))


def demo(args: argparse.Namespace) -> int:
    """``vlmtui demo``: the built-in suite on tiny offline models."""
    try:
        path = demo_suite_path()
    except SuiteError as exc:
        return fail(str(exc))
    from vlmtui.llamacpp import find_llama_server, how_to_get

    if find_llama_server() is None:
        print(f"vlmtui: the demo's llama.cpp model is skipped: no llama-server; {how_to_get()}", file=sys.stderr)
    return _start(args, None if (args.resume or args.rerun_failed) else path)


def check(args: argparse.Namespace) -> int:
    """``vlmtui check SUITE``: the dry run (vlmtui/check.py); nothing is loaded."""
    from vlmtui.check import check_suite

    try:
        return check_suite(args.suite, _overrides(args), only=model_ids(args.only), skip=model_ids(args.skip),
                           force=args.force)
    except SuiteError as exc:
        return fail(str(exc))
    except ValueError as exc:  # a budget the parser let through but no machine can size
        return fail(f"--budget: {exc}")


def doctor(args: argparse.Namespace) -> int:
    """``vlmtui doctor`` (``--build-llama-server``: build and cache llama.cpp's server first)."""
    from vlmtui.doctor import build_llama_server, print_cache_report, print_doctor
    from vlmtui.llamacpp_build import LlamaBuildError

    try:
        if args.suite:
            return print_cache_report(args.suite, _overrides(args))
        return build_llama_server() if args.build_llama_server else print_doctor(_overrides(args))
    except LlamaBuildError as exc:
        return fail(str(exc), EXIT_FAILED)
    except SuiteError as exc:
        return fail(str(exc))


def _print_utf8(text: str) -> None:
    """Text to stdout as UTF-8 whatever the locale says (a report holds model output in any script)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8"))
    buffer.flush()


def report(args: argparse.Namespace) -> int:
    """``vlmtui report LOG``: the report on stdout, or in the file ``-o`` names."""
    from vlmtui.reports.records import load_log
    from vlmtui.reports.report import render_report, write_report

    try:
        if args.output is None or str(args.output) == "-":
            _print_utf8(render_report(load_log(args.log), args.format))
        else:
            print(f"report: {write_report(args.log, args.format, args.output)}", file=sys.stderr)
    except LogError as exc:
        return fail(str(exc))
    return EXIT_OK


def compare(args: argparse.Namespace) -> int:
    """``vlmtui compare LOG_A LOG_B``: text, Markdown or JSON; the summary line last (on stderr for JSON);
    with ``--fail-on-regression``, exit 1 when a case or a model's metric regressed (reports/compare_verdict.py)."""
    import json

    from rich.console import Console, Group

    from vlmtui.reports.compare import compare_logs, comparison_renderables
    from vlmtui.reports.compare_verdict import (
        comparison_json,
        comparison_markdown,
        mismatch_warnings,
        regressions,
        summary_line,
    )
    from vlmtui.reports.records import load_log

    if args.threshold < 0:
        return fail("--threshold must be a percentage ≥ 0")
    try:
        comparison = compare_logs(load_log(args.log_a), load_log(args.log_b))
    except LogError as exc:
        return fail(str(exc))
    for warning in mismatch_warnings(comparison):
        print(f"vlmtui: warning: {warning}", file=sys.stderr)
    if args.format == "json":
        _print_utf8(json.dumps(comparison_json(comparison, args.threshold), indent=2, ensure_ascii=False) + "\n")
    elif args.format == "md":
        _print_utf8(comparison_markdown(comparison, args.threshold))
    else:
        # A pipe or file gets wide tables: the output is for pasting into an incident report.
        console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
        console.print(Group(*comparison_renderables(comparison)))
        console.print(summary_line(comparison), soft_wrap=True)
    if not args.fail_on_regression:
        return EXIT_OK
    found = regressions(comparison, args.threshold)
    for regression in found:
        print(f"vlmtui: regression: {regression}", file=sys.stderr)
    return EXIT_FAILED if found else EXIT_OK


def score(args: argparse.Namespace) -> int:
    """``vlmtui score LOG``: score the log's answers again into a new log, and show the new summary."""
    from rich.console import Console

    from vlmtui.reports.rescore import rescore, suite_items
    from vlmtui.reports.summary import summarise
    from vlmtui.suite.loader import load_suite
    from vlmtui.ui.headless import summary_table

    try:
        items, name = {}, ""
        if args.suite:
            suite = load_suite(args.suite)
            items, name = suite_items(suite), str(args.suite)
        result = rescore(args.log, metrics=args.metrics, items=items, output=args.output, suite_name=name)
    except (SuiteError, LogError) as exc:
        return fail(str(exc))
    for note in result.notes:
        print(f"vlmtui: note: {note}", file=sys.stderr)
    console = Console(highlight=False)
    summaries = summarise(result.records.latest().values())
    console.print(summary_table(summaries, f"Scored {result.answers} answer(s)", width=console.width))
    print(f"scored log: {result.output}", file=sys.stderr)
    return EXIT_OK
