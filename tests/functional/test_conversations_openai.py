"""Conversations through the openai backend in the real worker: an OpenAI-compatible endpoint that keeps every
request it receives (so the test reads the messages array each turn sent), and a real ``mlx_vlm.server``."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import SAMPLE_IMAGES
from tests.functional.helpers import scheduler_for
from tests.functional.llamacpp_helpers import needs_server
from tests.functional.test_conversations import conversation_suite
from vlmtui.engine.events import CaseFinished, CaseResult
from vlmtui.engine.plan import Case

pytestmark = pytest.mark.slow


class RecordingEndpoint(http.server.BaseHTTPRequestHandler):
    """``/v1/models`` and a streamed ``/v1/chat/completions`` whose answer names the request's turn number."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self._json({"object": "list", "data": [{"id": "recorder", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(body)
        turn = sum(message["role"] == "user" for message in body["messages"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for text in (f"answer {turn}", " in red and blue."):
            self._event({"id": "c", "object": "chat.completion.chunk", "model": "recorder",
                         "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
        self._event({"id": "c", "object": "chat.completion.chunk", "model": "recorder", "choices": [],
                     "usage": {"prompt_tokens": 10 * turn, "completion_tokens": 2, "total_tokens": 10 * turn + 2}})
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()

    def _json(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    """The recording endpoint on a free loopback port, serving from a thread; its base URL."""
    RecordingEndpoint.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


async def run_one(cases: list[Case]) -> CaseResult:
    scheduler, recorder = scheduler_for(cases)
    await scheduler.run()
    results: list[CaseResult] = [event.result for event in recorder.of(CaseFinished)]
    assert len(results) == 1
    return results[0]


async def test_each_turn_sends_the_whole_conversation_with_one_image_in_the_first_message(
        tmp_path: Path, endpoint: str) -> None:
    model = f'[[models]]\nid = "remote"\nbackend = "openai"\nbase_url = "{endpoint}"\n'
    result = await run_one(conversation_suite(tmp_path, model))
    assert result.status == "passed", (result.error, result.turns)
    requests = RecordingEndpoint.received
    assert len(requests) == 3, "one request a turn"
    roles = [[message["role"] for message in request["messages"]] for request in requests]
    assert roles == [["user"], ["user", "assistant", "user"], ["user", "assistant", "user", "assistant", "user"]]
    third = requests[2]["messages"]
    images = [(i, part) for i, message in enumerate(third) if isinstance(message["content"], list)
              for part in message["content"] if part["type"] == "image_url"]
    assert len(images) == 1 and images[0][0] == 0, "exactly one image, in the first user message"
    assert images[0][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert [part["text"] for part in third[0]["content"] if part["type"] == "text"] == [result.turns[0]["prompt"]]
    assert third[1]["content"] == "answer 1 in red and blue." == result.turns[0]["output"]
    assert third[3]["content"] == "answer 2 in red and blue." == result.turns[1]["output"]
    assert [third[2]["content"], third[4]["content"]] == [t["prompt"] for t in result.turns[1:]]
    assert [t["metrics"]["prompt_tokens"] for t in result.turns] == [10, 20, 30], "each turn's own usage"


async def test_a_conversation_through_a_real_mlx_vlm_server(tmp_path: Path) -> None:
    model = '[[models]]\nid = "served"\nbackend = "openai"\nserver = "mlx-vlm"\npath = "tiny:idefics3"\n'
    result = await run_one(conversation_suite(tmp_path, model))
    assert result.status == "passed", (result.error, result.turns)
    assert all(turn["output"] for turn in result.turns)
    tokens = [turn["metrics"]["prompt_tokens"] for turn in result.turns]
    answers = [turn["metrics"]["gen_tokens"] for turn in result.turns]
    print(f"\nmlx_vlm.server: prompt tokens per turn {tokens}, answer tokens {answers}")
    for k in (1, 2):
        assert tokens[k] > tokens[k - 1] + answers[k - 1], "the server's prompt holds the history"
    assert result.image is not None and Path(result.image) == SAMPLE_IMAGES / "bicycle.jpg"


@needs_server
async def test_a_conversation_through_llama_server(tmp_path: Path) -> None:
    """The tiny Idefics3 as GGUF + mmproj behind a started llama-server: the messages array through its own
    chat template; every turn's whole prompt is evaluated again (vlmtui sends ``cache_prompt: false``)."""
    model = '[[models]]\nid = "gguf"\nbackend = "openai"\nserver = "llama.cpp"\npath = "tiny:idefics3"\n'
    result = await run_one(conversation_suite(tmp_path, model))
    assert result.status == "passed", (result.error, result.turns)
    tokens = [turn["metrics"]["prompt_tokens"] for turn in result.turns]
    answers = [turn["metrics"]["gen_tokens"] for turn in result.turns]
    print(f"\nllama-server: prompt tokens per turn {tokens}, answer tokens {answers}, "
          f"ttft {[turn['metrics']['ttft_s'] for turn in result.turns]}")
    for k in (1, 2):
        assert tokens[k] > tokens[k - 1] + answers[k - 1], "the server's prompt holds the history"
    assert {turn["metrics"]["metrics_source"] for turn in result.turns} == {"server"}
