"""The ``vlmtui`` command: argument parsing and dispatch only."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence

from vlmtui import __version__
from vlmtui.exit_codes import EXIT_INTERRUPTED, EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        words = self.prog.split()
        command = " ".join(words[:1] + words[1:][-1:])  # "vlmtui" or "vlmtui run", never "vlmtui vlmtui"
        choice = re.search(r"invalid choice: '([^']*)'", message)
        if choice is not None and not words[1:]:
            guess = difflib.get_close_matches(choice.group(1), COMMANDS, n=1, cutoff=0.5)
            message = f"no command {choice.group(1)!r}" + (f"; did you mean 'vlmtui {guess[0]}'?" if guess else "")
        self.exit(EXIT_USAGE, f"vlmtui: error: {message} (see {command} --help)\n")


COMMANDS = ("run", "demo", "check", "doctor", "report", "compare", "score")
"""The sub-commands, for the suggestion after a typo (``vlmtui rn``)."""


def _guard_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("memory guard (override the suite's [guard])")
    group.add_argument("--budget", help='memory budget: "auto", a size like 12GiB, or a percentage of RAM like 60%%')
    group.add_argument("--warn", type=float, help="warn at this percentage of the budget (default 75)")
    group.add_argument("--cleanup", type=float, help="free caches at this percentage (default 85)")
    group.add_argument("--abort", type=float, help="abort the case at this percentage (default 95)")
    group.add_argument("--sample-ms", type=int, help="memory sampling interval in ms (default 250)")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--headless", action="store_true",
                        help="plain output instead of the dashboard (automatic when stdout is not a terminal)")
    parser.add_argument("--log", metavar="PATH", help="session log file (default: under the user data directory)")
    parser.add_argument("--resume", metavar="LOG", help="continue an interrupted session from its log")
    parser.add_argument("--rerun-failed", metavar="LOG",
                        help="rerun the failed, crashed and aborted cases of a session log")
    parser.add_argument("--skip-missing", action="store_true",
                        help="run without the dataset items whose image is missing (else: exit 2 before any load)")
    parser.add_argument("--ascii", action="store_true", default=None,
                        help="draw gauges, charts and marks in ASCII (automatic when the locale is not UTF-8)")
    parser.add_argument("--no-mouse", action="store_true", help="no mouse reports from the terminal at all")
    parser.add_argument("--format", choices=("text", "jsonl"), default="text",
                        help="plain output: text (one line per case, never wrapped off a terminal) or jsonl (the "
                             "log's case_end records, one a line; everything else on stderr)")
    parser.add_argument("--force", action="store_true",
                        help="write --log to a file that is not this suite's log, or use a --budget larger than "
                             "this machine's memory")
    _model_options(parser)
    _guard_options(parser)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", action="append", metavar="MODEL[,MODEL]",
                        help="run only these models of the suite (repeatable)")
    parser.add_argument("--skip", action="append", metavar="MODEL[,MODEL]",
                        help="leave these models of the suite out (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = _Parser(prog="vlmtui", description="Test vision-language models without taking the machine down.")
    parser.add_argument("--version", action="version", version=f"vlmtui {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a suite file")
    run.add_argument("suite", nargs="?", help="the suite TOML file (optional with --rerun-failed/--resume)")
    _run_options(run)
    run.add_argument("--download-only", action="store_true",
                     help="fetch the suite's hub models (after the fit check) and load nothing, so a run can start "
                          "later offline")
    demo = sub.add_parser("demo", help="run the built-in demo suite on tiny offline models")
    _run_options(demo)
    check = sub.add_parser("check", help="dry run: validate a suite, its images and model sources, print the plan")
    check.add_argument("suite", help="the suite TOML file")
    check.add_argument("--force", action="store_true", help="accept a --budget larger than this machine's memory")
    _model_options(check)
    _guard_options(check)
    doctor = sub.add_parser("doctor", help="what this machine can run: backends, devices, memory, budget")
    doctor.add_argument("suite", nargs="?", help="a suite file: each model's size, whether the Hugging Face cache "
                                                 "holds it, and what is left to download")
    doctor.add_argument("--build-llama-server", action="store_true",
                        help="build llama.cpp's llama-server from source and cache it (11-35 minutes on 2 cores; "
                             "at once when it is cached)")
    _guard_options(doctor)
    report = sub.add_parser("report", help="write a report of a session log")
    report.add_argument("log", help="the session log (JSONL)")
    report.add_argument("--format", choices=("md", "html", "json", "junit"), default="md")
    report.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    compare = sub.add_parser("compare", help="compare two session logs case by case")
    compare.add_argument("log_a")
    compare.add_argument("log_b")
    compare.add_argument("--format", choices=("text", "md", "json"), default="text")
    compare.add_argument("--fail-on-regression", action="store_true",
                         help="exit 1 when a case that passed in A fails in B, or a metric regresses past "
                              "--threshold")
    compare.add_argument("--threshold", type=float, default=10.0, metavar="PCT",
                         help="how far (in %%) tok/s may drop or time and peak memory rise before it is a "
                              "regression (default 10)")
    score = sub.add_parser("score", help="score a session log's answers again (new metrics, corrected references)")
    score.add_argument("log", help="the session log (JSONL)")
    score.add_argument("--suite", metavar="SUITE", help="take the reference answers from this suite's datasets")
    score.add_argument("--metrics", nargs="+", metavar="METRIC",
                       help="metrics to score, the first is the primary (default: each case's own)")
    score.add_argument("-o", "--output", metavar="NEW",
                       help="the new log (default: LOG's name with .scored.jsonl)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    from vlmtui import commands  # keeps `vlmtui --help` fast

    handler = {
        "run": commands.run,
        "demo": commands.demo,
        "check": commands.check,
        "doctor": commands.doctor,
        "report": commands.report,
        "compare": commands.compare,
        "score": commands.score,
    }[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("vlmtui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry() -> None:
    """``python -m vlmtui``."""
    sys.exit(main())


if __name__ == "__main__":
    entry()

