"""``[[datasets]]`` in a suite: what parses and plans, and the one-line errors for what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.vqa_sample import SAMPLE, write_csv_sample, write_jsonl_sample, write_vqa_sample
from vlmtui.engine.plan import plan_cases
from vlmtui.scoring.judge import DEFAULT_JUDGE_PROMPT
from vlmtui.suite.datasets import DEFAULT_ANSWER_FORMAT
from vlmtui.suite.loader import SuiteError, load_suite

MODELS = """
[[models]]
id = "a"
backend = "transformers"
path = "tiny:idefics3"

[[models]]
id = "moon"
backend = "mlx-vlm"
path = "tiny:moondream2"
"""

VQA = """
[[datasets]]
id = "vqa"
format = "vqa2"
questions = "data/questions.json"
annotations = "data/annotations.json"
images = "data/images"
metrics = ["vqa", "relaxed"]
"""


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The drawn VQA sample as VQA v2 files, JSONL and CSV under ``tmp_path/data``."""
    root = tmp_path / "data"
    write_vqa_sample(root)
    write_jsonl_sample(root)
    write_csv_sample(root)
    return root


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(f'name = "t"\nmax_tokens = 8\n{MODELS}{body}')
    return path


def test_a_vqa2_table_reads_its_items_with_the_defaults(tmp_path: Path, data: Path) -> None:
    suite = load_suite(write(tmp_path, VQA))
    (entry,) = suite.datasets
    assert entry.id == "vqa" and entry.metrics == ("vqa", "relaxed") and entry.pass_at == 0.5
    assert entry.source.questions == data / "questions.json" and entry.source.images == data / "images"
    assert entry.answer_format == DEFAULT_ANSWER_FORMAT["vqa2"] and entry.judge_prompt == DEFAULT_JUDGE_PROMPT
    assert [item.id for item in entry.dataset.items] == [str(q.question_id) for q in SAMPLE]
    assert entry.prompt(entry.dataset.items[0]) == f"What color is the square?\n{DEFAULT_ANSWER_FORMAT['vqa2']}"
    assert not suite.prompts and not suite.images, "a suite of datasets alone needs no prompts"


def test_jsonl_and_csv_tables_with_selection_pass_at_and_no_answer_format(tmp_path: Path, data: Path) -> None:
    suite = load_suite(write(tmp_path, """
[[datasets]]
id = "mine"
format = "jsonl"
path = "data/sample.jsonl"
metrics = ["relaxed", "anls"]
limit = 2
pass_at = 0.9

[[datasets]]
id = "sheet"
format = "csv"
path = "data/sample.csv"
metrics = "exact"
sample = 3
seed = 7
answer_format = "Reply in one word."
"""))
    mine, sheet = suite.datasets
    assert [i.id for i in mine.dataset.items] == ["1000", "1001"] and mine.pass_at == 0.9
    assert mine.answer_format == "" and mine.prompt(mine.dataset.items[0]) == "What color is the square?"
    assert len(sheet.dataset.items) == 3 and sheet.metrics == ("exact",) and sheet.source.seed == 7
    assert sheet.prompt(sheet.dataset.items[0]).endswith("?\nReply in one word.")
    again = load_suite(write(tmp_path, '[[datasets]]\nid = "s"\nformat = "csv"\npath = "data/sample.csv"\n'
                                       'metrics = "exact"\nsample = 3\nseed = 7\n'))
    assert again.datasets[0].dataset.items == sheet.dataset.items, "the same seed draws the same items"


def test_every_item_runs_on_every_model_and_a_judge_grades_each_answer_last(tmp_path: Path, data: Path) -> None:
    suite = load_suite(write(tmp_path, VQA.replace('metrics = ["vqa", "relaxed"]',
                                                   'metrics = ["judge:a", "vqa"]\nlimit = 2\npass_at = 0.8')))
    cases = plan_cases(suite)
    answers = [c for c in cases if c.judging is None]
    judges = [c for c in cases if c.judging is not None]
    assert [c.case_id for c in answers] == ["a/vqa/1000", "a/vqa/1001", "moon/vqa/1000", "moon/vqa/1001"]
    assert cases[-len(judges):] == judges, "judge cases are planned after every answer"
    assert [c.case_id for c in judges] == [f"a/judge/{c.case_id}" for c in answers]
    first = answers[0]
    assert first.prompt == f"What color is the square?\n{DEFAULT_ANSWER_FORMAT['vqa2']}"
    assert first.image is not None and first.image.name == "COCO_val2014_000000000001.png" and first.kind == "image"
    assert first.item is not None and first.item.dataset == "vqa" and first.item.item_id == "1000"
    assert first.item.references == SAMPLE[0].answers and first.item.answer_type == "other"
    assert first.item.metrics == ("judge:a", "vqa") and first.item.pass_at == 0.8
    assert first.skip_reason is None and not first.warmup
    judge = judges[0]
    assert judge.kind == "judge" and judge.capability == "text" and judge.image is None
    assert judge.judging is not None and judge.judging.judged_case_id == "a/vqa/1000"
    assert judge.judging.metric == "judge:a" and judge.judging.attempt is None and judge.item == first.item


def test_a_vision_only_judge_is_skipped_with_its_reason(tmp_path: Path, data: Path) -> None:
    suite = load_suite(write(tmp_path, VQA.replace('["vqa", "relaxed"]', '["vqa", "judge:moon"]')))
    judges = [c for c in plan_cases(suite) if c.judging is not None]
    assert judges and all(c.skip_reason and "vision-only" in c.skip_reason for c in judges)


@pytest.mark.parametrize(("change", "expected"), [
    (('id = "vqa"', 'id = "v q a"'), "suite.toml:15: id: use letters, digits"),
    (('id = "vqa"\n', ''), "suite.toml:14: datasets: datasets[0] needs id"),
    (('metrics = ["vqa", "relaxed"]\n', ''),
     'suite.toml:14: datasets: datasets[0] needs metrics = ["vqa", "relaxed"]'),
    (('format = "vqa2"', 'format = "parquet"'),
     "suite.toml:16: format: unknown format 'parquet' (known: vqa2, jsonl, csv)"),
    (('format = "vqa2"', 'format = "jsonl"'), "suite.toml:17: questions: a jsonl dataset takes path, not questions"),
    (('images = "data/images"\n', ''), "suite.toml:14: datasets: a vqa2 dataset needs images"),
    (('images = "data/images"', 'imagez = "x"'), "suite.toml:19: imagez: unknown key (known keys: annotations,"),
    (('"relaxed"]', '"bleu"]'),
     "suite.toml:20: metrics: unknown metric 'bleu' (known: vqa, exact, relaxed, anls, judge:<model-id>)"),
    (('"relaxed"]', '"judge:qwen"]'),
     "suite.toml:20: metrics: judge:qwen: no model of the suite has id 'qwen' (models: a, moon)"),
    (('"relaxed"]', '"vqa"]'), "suite.toml:20: metrics: vqa is listed twice"),
    (('"relaxed"]', '"relaxed"]\nlimit = 2\nsample = 3'), "suite.toml:22: sample: limit takes the first items"),
    (('"relaxed"]', '"relaxed"]\nseed = 3'), "suite.toml:21: seed: seed picks the items of sample = N"),
    (('"relaxed"]', '"relaxed"]\nlimit = 0'), "suite.toml:21: limit: must be between 1 and 1e+09, got 0"),
    (('"relaxed"]', '"relaxed"]\npass_at = 1.5'), "suite.toml:21: pass_at: must be between 0 and 1, got 1.5"),
    (('"relaxed"]', '"relaxed"]\njudge_prompt = "Grade {answer}"'), "suite.toml:21: judge_prompt: no metric is judge:"),
    (('"relaxed"]', '"judge:a"]\njudge_prompt = "Grade {reply}"'),
     "suite.toml:21: judge_prompt: unknown placeholder {reply} (known: {question}, {references}, {answer})"),
    (('"relaxed"]', '"judge:a"]\njudge_prompt = "Grade it"'),
     "suite.toml:21: judge_prompt: has no {answer} placeholder"),
    (('"data/questions.json"', '"data/nope.json"'), "suite.toml:14: datasets: dataset 'vqa': "),
])  # fmt: skip
def test_bad_tables_are_one_line_naming_the_key_and_its_line(tmp_path: Path, data: Path, change: tuple[str, str],
                                                             expected: str) -> None:
    body = VQA.replace(*change)
    assert body != VQA
    with pytest.raises(SuiteError) as error:
        load_suite(write(tmp_path, body))
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(tmp_path / expected.split(":", 1)[0])), message
    assert expected in message, message


def test_a_dataset_file_that_is_wrong_is_named_with_its_own_line(tmp_path: Path, data: Path) -> None:
    (data / "sample.jsonl").write_text('{"id": "1", "question": "Q?", "answerz": []}\n')
    with pytest.raises(SuiteError) as error:
        load_suite(write(tmp_path, '[[datasets]]\nid = "m"\nformat = "jsonl"\npath = "data/sample.jsonl"\n'
                                   'metrics = ["exact"]\n'))
    assert str(error.value) == (f"{tmp_path}/suite.toml:13: datasets: dataset 'm': {data}/sample.jsonl:1: unknown key "
                                "'answerz' (known keys: id, image, question, answers, answer, answer_type)")


def test_two_datasets_cannot_share_an_id(tmp_path: Path, data: Path) -> None:
    with pytest.raises(SuiteError, match=r"suite.toml:23: id: dataset id 'vqa' is used twice"):
        load_suite(write(tmp_path, VQA + VQA))


def test_missing_images_are_listed_not_fatal_when_the_suite_is_read(tmp_path: Path, data: Path) -> None:
    (data / "images" / "3.png").unlink()
    (entry,) = load_suite(write(tmp_path, VQA)).datasets
    assert [m.item_id for m in entry.dataset.missing] == ["3000"]
    assert "3000" not in [i.id for i in entry.dataset.items]
