"""[[conversations]] in a suite: what parses and plans, and the one-line errors for what does not; how a
conversation's history becomes each backend's messages, and the wire field that carries it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT, SAMPLE_IMAGES
from vlmtui.engine.plan import plan_cases
from vlmtui.suite.loader import SuiteError, load_suite
from vlmtui.wire import protocol as p
from vlmtui.wire.spec import Expect
from vlmtui.worker.backends.base import Exchange, GenerationRequest

MODELS = """
[[models]]
id = "smol"
backend = "transformers"
path = "tiny:idefics3"
expect = { not_contains = ["sorry"] }

[[models]]
id = "moon"
backend = "mlx-vlm"
path = "tiny:moondream2"
max_tokens = 4
"""

GOOD = f"""
name = "c"
max_tokens = 8
expect = {{ max_total_s = 60 }}

[[conversations]]
id = "context"
images = ["{SAMPLE_IMAGES}/*.jpg"]
max_tokens = 16
turns = [
  "Describe this image in detail.",
  {{ text = "What colours?", expect = {{ regex = "(?i)red|blue" }} }},
]

[[conversations]]
id = "chat"
turns = ["Hello?", "What did I just say?"]
{MODELS}"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_conversations_plan_one_case_per_image_per_model(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, GOOD))
    assert [c.id for c in suite.conversations] == ["context", "chat"]
    cases = plan_cases(suite)
    assert [(c.case_id, c.kind) for c in cases] == [
        ("smol/context/bicycle", "conversation"), ("smol/context/lake", "conversation"),
        ("smol/chat", "conversation"),
        ("moon/context/bicycle", "conversation"), ("moon/context/lake", "conversation"), ("moon/chat", "conversation"),
    ]
    smol = cases[0]
    assert smol.image == SAMPLE_IMAGES / "bicycle.jpg" and smol.prompt == "Describe this image in detail."
    assert smol.max_tokens == 16, "the conversation's max_tokens over the model's and the suite's"
    assert [t.text for t in smol.turns] == ["Describe this image in detail.", "What colours?"]
    # Each turn: the suite's expect, the turn's own, and the model's under them.
    assert smol.turns[1].expect == Expect(not_contains=("sorry",), regex="(?i)red|blue", max_total_s=60.0)
    assert smol.turns[0].expect == Expect(not_contains=("sorry",), max_total_s=60.0)
    chat = cases[2]
    assert chat.image is None and chat.max_tokens == 8 and chat.skip_reason is None
    # Moondream2 is vision-only by its config: its text-only conversation is skipped at plan time.
    assert cases[5].skip_reason is not None and "vision-only" in cases[5].skip_reason
    assert cases[3].max_tokens == 16 and cases[3].skip_reason is None


@pytest.mark.parametrize(("body", "needle"), [
    ('[[conversations]]\nid = "x"\n', "turns: a conversation needs turns"),
    ('[[conversations]]\nturns = ["a"]\n', "id: a conversation needs id"),
    ('[[conversations]]\nid = "a b"\nturns = ["a"]\n', "id: use letters, digits"),
    ('[[conversations]]\nid = "x"\nturns = [{ expect = { min_tokens = 1 } }]\n', "a turn table needs a text"),
    ('[[conversations]]\nid = "x"\nturns = [{ text = "a", answer = ["b"] }]\n', "turns.answer"),
    ('[[conversations]]\nid = "x"\nturns = [{ text = "a", answers = [" "] }]\n', "at least one non-empty answer"),
    ('[[conversations]]\nid = "x"\nmetrics = ["bleu"]\nturns = ["a"]\n', "unknown metric 'bleu'"),
    ('[[conversations]]\nid = "x"\nmetrics = ["judge:smol"]\nturns = ["a"]\n', "a judge grades dataset answers"),
    ('[[conversations]]\nid = "x"\npass_at = 2\nturns = ["a"]\n', "pass_at: must be between 0 and 1"),
    ('[[conversations]]\nid = "x"\nturns = ["a"]\ncolour = 1\n', "colour"),
    ('[[conversations]]\nid = "x"\nturns = ["a"]\nimages = ["nothing/*.png"]\n', "matches no file"),
    ('[[conversations]]\nid = "x"\nturns = ["a"]\nmax_tokens = 0\n', "max_tokens: must be between 1"),
    ('[[conversations]]\nid = "x"\nturns = [{ text = "a", expect = { regex = "(" } }]\n', "not a valid regular"),
    ('[[conversations]]\nid = "x"\nturns = ["a"]\n\n[[conversations]]\nid = "x"\nturns = ["b"]\n',
     "conversation id 'x' is used twice"),
])
def test_bad_conversations_are_one_clear_line(tmp_path: Path, body: str, needle: str) -> None:
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path, f'name = "c"\n{body}{MODELS}'))
    message = str(info.value)
    assert needle in message and "\n" not in message, message
    assert message.startswith(f"{tmp_path / 'suite.toml'}:")


def test_turns_with_answers_carry_the_conversations_metrics(tmp_path: Path) -> None:
    text = ('name = "c"\n[[conversations]]\nid = "x"\nturns = ["a", { text = "b", answers = ["yes"] }]\n'
            '[[conversations]]\nid = "y"\nmetrics = ["exact", "anls"]\npass_at = 0.8\n'
            f'turns = [{{ text = "c", answers = ["no", "nope"] }}]\n{MODELS}')
    cases = plan_cases(load_suite(write(tmp_path, text)))
    plain, scored = cases[0].turns
    assert plain.answers == () and plain.metrics == ()
    assert scored.answers == ("yes",) and scored.metrics == ("relaxed",) and scored.pass_at == 0.5
    (turn,) = cases[1].turns
    assert turn.answers == ("no", "nope") and turn.metrics == ("exact", "anls") and turn.pass_at == 0.8
    assert turn.expect == Expect(not_contains=("sorry",)), "the model's expect still applies"


def test_two_images_with_one_stem_would_share_a_case_id(tmp_path: Path) -> None:
    for name in ("photo.png", "photo.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    with pytest.raises(SuiteError, match="two images share the name 'photo'"):
        load_suite(write(tmp_path, f'name = "c"\n[[conversations]]\nid = "x"\nimages = ["*"]\nturns = ["a"]\n{MODELS}'))


def test_a_conversation_may_be_the_whole_suite_and_the_shipped_one_loads() -> None:
    suite = load_suite(ROOT / "suites" / "context.toml")
    assert not suite.prompts and not suite.text_prompts and len(suite.conversations) == 1
    turns = [t.text for t in suite.conversations[0].turns]
    assert turns == ["Describe this image in detail.", "What were the most prominent colours?",
                     "Were there any people visible?", "Summarise the main subject in one sentence."]
    cases = plan_cases(suite)
    assert {c.kind for c in cases} == {"conversation"} and len(cases) == 3 * len(suite.models)


def test_the_cli_refuses_a_bad_conversation_with_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, f'name = "c"\n[[conversations]]\nid = "x"\n{MODELS}')
    run = subprocess.run([sys.executable, "-m", "vlmtui", "run", str(path), "--headless"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120, check=False)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "a conversation needs turns" in lines[0], run.stderr


def request(history: tuple[Exchange, ...], image: Image.Image | None) -> GenerationRequest:
    return GenerationRequest(case_id="c", prompt="Summarise.", image=image, max_tokens=4, temperature=0.0,
                             should_stop=lambda: False, history=history)


HISTORY = (Exchange("Describe.", "A red bike."), Exchange("Colours?", "Red and blue."))


def test_the_history_is_user_assistant_pairs_with_the_image_in_the_first_user_message() -> None:
    image = Image.new("RGB", (4, 4))
    assert request(HISTORY, image).messages() == [
        ("user", "Describe.", True), ("assistant", "A red bike.", False), ("user", "Colours?", False),
        ("assistant", "Red and blue.", False), ("user", "Summarise.", False)]
    assert request((), image).messages() == [("user", "Summarise.", True)]
    assert request(HISTORY, None).messages()[0] == ("user", "Describe.", False)


def test_the_openai_messages_array_carries_one_image_in_the_first_user_message() -> None:
    from vlmtui.worker.backends.openai import chat_messages

    messages = chat_messages(request(HISTORY, Image.new("RGB", (4, 4))))
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    first = messages[0]["content"]
    assert isinstance(first, list) and [part["type"] for part in first] == ["image_url", "text"]
    assert all(isinstance(m["content"], str) for m in messages[1:])


def test_mlx_vlm_gets_a_marked_image_and_refuses_history_for_prompt_only_models() -> None:
    from vlmtui.worker.backends.mlx_processor import chat_prompt, history_refusal

    assert chat_prompt(request((), None)) == "Summarise."
    prompt = chat_prompt(request(HISTORY, Image.new("RGB", (4, 4))))
    assert isinstance(prompt, list) and prompt[0]["content"][0] == {"type": "image"}
    assert prompt[1] == {"role": "assistant", "content": "A red bike."}
    assert history_refusal("idefics3") == "" and history_refusal("llava_next") == ""
    assert history_refusal("moondream2").startswith("moondream2 takes a single prompt in mlx-vlm")
    assert history_refusal("paligemma") != ""


def test_the_run_command_carries_the_history_and_loaded_says_why_there_is_none() -> None:
    run = p.Run(case_id="c", prompt="b?", history=[{"prompt": "a?", "output": "A."}])
    assert p.decode(p.encode(run)) == run
    assert p.decode(p.encode(p.Run(case_id="c", prompt="x"))) == p.Run(case_id="c", prompt="x")
    loaded = p.Loaded(model_id="m", load_s=1.0, device="cpu", no_history="no chat roles")
    assert p.decode_event(p.encode(loaded)) == loaded
    assert p.PROTOCOL_VERSION == 3
