"""The engine and the CLI import none of textual, torch, transformers or mlx (the architecture's rule)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("textual", "torch", "transformers", "mlx", "mlx_vlm")


def test_engine_and_cli_import_no_framework_or_ui() -> None:
    code = (
        "import sys\n"
        "import vlmtui.cli, vlmtui.commands, vlmtui.engine.scheduler, vlmtui.engine.setup, vlmtui.engine.session_log\n"
        "import vlmtui.ui.headless, vlmtui.engine.worker_client, vlmtui.engine.plan, vlmtui.suite.loader\n"
        "import vlmtui.worker.backends\n"
        "import vlmtui.worker.backends.transformers, vlmtui.worker.backends.mlx_vlm, vlmtui.worker.backends.openai\n"
        "import vlmtui.memory.guard, vlmtui.memory.budget, vlmtui.memory.system, vlmtui.memory.preflight\n"
        "import vlmtui.worker.frameworks, vlmtui.doctor\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported: {done.stdout.strip()}"
