"""Regenerate docs/screenshot.svg: the real demo on this machine, mid-run, at 120×40.

    HF_HUB_OFFLINE=1 python docs/make_screenshot.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from vlmtui.commands import demo_suite_path
from vlmtui.engine.events import CaseFinished
from vlmtui.engine.setup import prepare_session
from vlmtui.ui.tui.app import VlmApp

OUT = Path(__file__).resolve().parent / "screenshot.svg"
FINISHED_BEFORE_SHOT = 14


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        session = prepare_session(demo_suite_path(), log_path=Path(tmp) / "log.jsonl")
        finished: list[CaseFinished] = []
        session.scheduler.subscribe(lambda e: finished.append(e) if isinstance(e, CaseFinished) else None)
        app = VlmApp(session.scheduler, log_path=session.log.path)
        async with app.run_test(size=(120, 40)) as pilot:
            while len(finished) < FINISHED_BEFORE_SHOT:
                await pilot.pause(0.05)
            await pilot.pause(0.3)
            app.save_screenshot(filename=OUT.name, path=str(OUT.parent))
            await app.stop_engine("screenshot taken")
        session.log.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
