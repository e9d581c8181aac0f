"""How a dead worker is described: the signal or exit code, and the cause in plain words."""

from __future__ import annotations

import signal

from vlmtui.engine.worker_client import describe_exit

# The incident's last words, as the original script printed them on an M-series Mac (mlx, macOS 14).
METAL_OOM = [
    "libc++abi: terminating due to uncaught exception of type std::runtime_error: [METAL] Command buffer "
    "execution failed: Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)",
]
CUDA_OOM = ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
            "capacity of 79.19 GiB of which 1.06 GiB is free."]


def test_metal_out_of_memory_abort_is_named() -> None:
    text = describe_exit(-signal.SIGABRT, METAL_OOM)
    assert text == "the worker was killed by SIGABRT: Metal ran out of GPU memory (the incident's crash)"


def test_cuda_out_of_memory_is_named() -> None:
    assert describe_exit(1, CUDA_OOM) == "the worker exited with code 1: CUDA ran out of GPU memory"


def test_plain_signals_and_codes() -> None:
    assert describe_exit(-signal.SIGSEGV, []) == "the worker was killed by SIGSEGV"
    assert "out-of-memory killer" in describe_exit(-signal.SIGKILL, [])
    assert describe_exit(3, ["", "ValueError: boom", ""]) == "the worker exited with code 3: ValueError: boom"
    assert describe_exit(None, []) == "the worker stopped answering"
