"""``python -m vlmtui.worker``: run the worker."""

from vlmtui.worker.main import main

main()
