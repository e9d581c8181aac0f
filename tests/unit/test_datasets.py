"""Dataset files: a drawn VQA v2 sample read back, JSONL and CSV, selection, missing images, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.fixtures.vqa_sample import (
    SAMPLE,
    VqaSampleFiles,
    write_csv_sample,
    write_jsonl_sample,
    write_vqa_sample,
)
from vlmtui.scoring.metrics import vqa
from vlmtui.suite.datasets import (
    Dataset,
    DatasetError,
    DatasetItem,
    DatasetSource,
    load_dataset,
    select,
)


@pytest.fixture
def sample(tmp_path: Path) -> VqaSampleFiles:
    """The drawn VQA v2 sample, written afresh for each test (some tests break it)."""
    return write_vqa_sample(tmp_path / "vqa")


def vqa_source(
    files: VqaSampleFiles, limit: int | None = None, sample: int | None = None, seed: int = 0
) -> DatasetSource:
    """The sample as a vqa2 source, with its annotations."""
    return DatasetSource(
        "vqa2",
        questions=files.questions,
        annotations=files.annotations,
        images=files.images,
        limit=limit,
        sample=sample,
        seed=seed,
    )


def one_line_error(source: DatasetSource) -> str:
    """The DatasetError that loading ``source`` raises, checked to be one line."""
    with pytest.raises(DatasetError) as caught:
        load_dataset(source)
    message = str(caught.value)
    assert "\n" not in message
    return message


def write(path: Path, text: str) -> Path:
    """``text`` into ``path``, which is returned."""
    path.write_text(text, encoding="utf-8")
    return path


class TestVqa2:
    def test_the_sample_reads_back(self, sample: VqaSampleFiles) -> None:
        dataset = load_dataset(vqa_source(sample))
        assert dataset.total == len(SAMPLE) and not dataset.missing
        assert [item.id for item in dataset.items] == [str(q.question_id) for q in SAMPLE]
        first = dataset.items[0]
        assert first == DatasetItem(
            id="1000",
            image=sample.images / "COCO_val2014_000000000001.png",
            question="What color is the square?",
            references=("red",) * 8 + ("dark red", "maroon"),
            answer_type="other",
        )
        assert all(len(item.references) == 10 for item in dataset.items)
        by_id = {item.id: item for item in dataset.items}
        assert by_id["3000"].image == sample.images / "3.png"  # the <image_id>.png form

    def test_the_drawn_images_show_the_answers(self, sample: VqaSampleFiles) -> None:
        by_id = {item.id: item for item in load_dataset(vqa_source(sample)).items}
        square = Image.open(by_id["1000"].image or "").convert("RGB")
        assert square.getpixel((112, 112)) == (220, 20, 20) and square.getpixel((5, 5)) == (255, 255, 255)
        circles = Image.open(by_id["2000"].image or "").convert("RGB")
        row = [circles.getpixel((x, 112)) for x in range(circles.width)]
        blue_runs = sum(1 for x in range(1, len(row)) if row[x] != (255, 255, 255) and row[x - 1] == (255, 255, 255))
        assert blue_runs == 2

    def test_known_answers_score(self, sample: VqaSampleFiles) -> None:
        items = {item.id: item for item in load_dataset(vqa_source(sample)).items}
        for question in SAMPLE:
            assert vqa(question.truth, items[str(question.question_id)].references) == 1.0
        assert vqa("3", items["2000"].references) == 0.6
        assert vqa("two", items["2000"].references) == 1.0

    def test_without_annotations_there_are_no_references(self, sample: VqaSampleFiles) -> None:
        dataset = load_dataset(DatasetSource("vqa2", questions=sample.questions, images=sample.images))
        assert all(item.references == () and item.answer_type is None for item in dataset.items)

    def test_missing_images_are_listed_per_item(self, sample: VqaSampleFiles) -> None:
        (sample.images / "COCO_val2014_000000000001.png").unlink()
        dataset = load_dataset(vqa_source(sample))
        assert [m.item_id for m in dataset.missing] == ["1000", "1001"]
        assert "1000" not in {item.id for item in dataset.items} and len(dataset.items) == len(SAMPLE) - 2
        assert "*_000000000001.jpg|png" in dataset.missing[0].looked_for
        with pytest.raises(DatasetError) as caught:
            dataset.require_images()
        message = str(caught.value)
        assert message.startswith(f"{sample.questions}: item 1000: image not found: {sample.images}/")
        assert "(and 1 more)" in message and "--skip-missing" in message and "\n" not in message

    def test_selection_happens_before_images_are_looked_for(self, sample: VqaSampleFiles) -> None:
        (sample.images / "COCO_val2014_000000000004.png").unlink()
        dataset = load_dataset(vqa_source(sample, limit=2))
        assert [item.id for item in dataset.items] == ["1000", "1001"] and not dataset.missing
        dataset.require_images()

    @pytest.mark.parametrize(
        ("document", "words"),
        [
            ("{}", 'no top-level "questions" list'),
            ('{"questions": [1]}', "questions[0]: expected an object"),
            ('{"questions": [{"question_id": "7", "image_id": 1, "question": "q"}]}', "question_id must be a whole"),
            ('{"questions": [{"question_id": 7, "image_id": 1}]}', "questions[0]: question is missing"),
            ('{"questions": [{"question_id": 7, "image_id": 1, "question": "q"}]}', "question_id 7 has no entry in"),
            ('{"questions": [\n  {"question_id": 7,}\n]}', ":2:21: invalid JSON"),
        ],
    )
    def test_bad_questions(self, sample: VqaSampleFiles, document: str, words: str) -> None:
        write(sample.questions, document)
        message = one_line_error(vqa_source(sample))
        assert str(sample.questions) in message and words in message

    def test_bad_annotations(self, sample: VqaSampleFiles) -> None:
        document = json.loads(sample.annotations.read_text())
        document["annotations"][1]["answers"][3] = {"answer_id": 4}
        write(sample.annotations, json.dumps(document))
        assert one_line_error(vqa_source(sample)) == (
            f"{sample.annotations}: annotations[1]: answers[3]: answer is missing or empty"
        )

    def test_missing_files(self, sample: VqaSampleFiles, tmp_path: Path) -> None:
        gone = tmp_path / "nope.json"
        assert one_line_error(DatasetSource("vqa2", questions=gone, images=sample.images)) == f"{gone}: file not found"
        no_images = DatasetSource("vqa2", questions=sample.questions, images=tmp_path / "none")
        assert one_line_error(no_images) == f"{tmp_path / 'none'}: images folder not found"
        assert "needs questions" in one_line_error(DatasetSource("vqa2", questions=sample.questions))


class TestJsonl:
    def test_the_sample_reads_back(self, tmp_path: Path) -> None:
        dataset = load_dataset(DatasetSource("jsonl", path=write_jsonl_sample(tmp_path)))
        assert [item.id for item in dataset.items] == [str(q.question_id) for q in SAMPLE]
        assert dataset.items[2].references == SAMPLE[2].answers and dataset.items[2].answer_type == "number"
        assert dataset.items[0].image == tmp_path / "images" / "COCO_val2014_000000000001.png"

    def test_answer_string_text_only_and_blank_lines(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "mine.jsonl",
            '{"id": 1, "question": "What is 2+2?", "answer": "4"}\n\n{"id": "b", "question": "Hi?"}\n',
        )
        dataset = load_dataset(DatasetSource("jsonl", path=path))
        assert dataset.items == (
            DatasetItem(id="1", image=None, question="What is 2+2?", references=("4",)),
            DatasetItem(id="b", image=None, question="Hi?", references=()),
        )

    def test_a_byte_order_mark_is_accepted(self, tmp_path: Path) -> None:
        path = tmp_path / "bom.jsonl"
        path.write_bytes(b'\xef\xbb\xbf{"id": 1, "question": "q"}\n')
        assert load_dataset(DatasetSource("jsonl", path=path)).items[0].id == "1"

    def test_missing_image_names_the_path(self, tmp_path: Path) -> None:
        path = write(tmp_path / "m.jsonl", '{"id": "x", "image": "pics/x.png", "question": "q", "answer": "a"}\n')
        dataset = load_dataset(DatasetSource("jsonl", path=path))
        assert dataset.items == () and dataset.missing[0].message() == (
            f"{path}: item x: image not found: {tmp_path / 'pics' / 'x.png'}"
        )

    @pytest.mark.parametrize(
        ("line", "words"),
        [
            ('{"id": "a", "question": "q",}', ":2:29: invalid JSON"),
            ('["a"]', ":2: expected a JSON object, found list"),
            ('{"id": "a", "question": "q", "answerz": ["x"]}', ":2: unknown key 'answerz' (known keys: id, image,"),
            ('{"id": "a"}', ":2: question is missing or empty"),
            ('{"question": "q"}', ":2: id is missing or empty"),
            ('{"id": "first", "question": "q"}', ":2: id 'first' is already used at "),
            ('{"id": "a", "question": "q", "answers": "x"}', ":2: answers must be a list of strings, not str"),
            ('{"id": "a", "question": "q", "answers": ["x", 1.5]}', ":2: answers[1] must be a string, not float"),
            ('{"id": "a", "question": "q", "answers": ["x"], "answer": "y"}', ":2: both answers and answer"),
            ('{"id": "a", "question": "q", "image": 3.0}', ":2: image must be a string"),
        ],
    )
    def test_errors_name_the_line(self, tmp_path: Path, line: str, words: str) -> None:
        path = write(tmp_path / "bad.jsonl", '{"id": "first", "question": "q"}\n' + line + "\n")
        message = one_line_error(DatasetSource("jsonl", path=path))
        assert message.startswith(f"{path}:2") and words in message


class TestCsv:
    def test_the_sample_reads_back(self, tmp_path: Path) -> None:
        csv_dataset = load_dataset(DatasetSource("csv", path=write_csv_sample(tmp_path)))
        jsonl_dataset = load_dataset(DatasetSource("jsonl", path=write_jsonl_sample(tmp_path)))
        assert csv_dataset.items == jsonl_dataset.items

    def test_answers_split_on_pipes_and_blank_cells(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "m.csv",
            'id,question,answers\n1,"Colour, please?", red | dark red \n2,Hi?,\n\n3,"multi\nline",yes\n',
        )
        dataset = load_dataset(DatasetSource("csv", path=path))
        assert [(item.id, item.question, item.references) for item in dataset.items] == [
            ("1", "Colour, please?", ("red", "dark red")),
            ("2", "Hi?", ()),
            ("3", "multi\nline", ("yes",)),
        ]

    def test_a_single_answer_column_is_not_split(self, tmp_path: Path) -> None:
        path = write(tmp_path / "m.csv", "id,question,answer\n1,q,a|b\n")
        assert load_dataset(DatasetSource("csv", path=path)).items[0].references == ("a|b",)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", ":1: no header row"),
            ("id,question\n1,q,extra\n", ":2: 3 cells where the header has 2 columns"),
            ("id,question,notes\n1,q,x\n", ":2: unknown key 'notes'"),
            ("id,question\n1,q\n1,again\n", ":3: id '1' is already used at "),
            ("id,question\n1,\n", ":2: question is missing or empty"),
        ],
    )
    def test_errors_name_the_line(self, tmp_path: Path, text: str, expected: str) -> None:
        path = write(tmp_path / "bad.csv", text)
        message = one_line_error(DatasetSource("csv", path=path))
        assert message.startswith(f"{path}:") and expected in message

    def test_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "latin.csv"
        path.write_bytes("id,question\n1,caf\xe9\n".encode("latin-1"))
        assert one_line_error(DatasetSource("csv", path=path)) == f"{path}: not UTF-8 text (byte 17)"


class TestSelection:
    def test_limit_takes_the_first(self) -> None:
        assert select(list(range(10)), limit=3) == [0, 1, 2]
        assert select(list(range(2)), limit=5) == [0, 1]

    def test_sample_is_reproducible_and_in_file_order(self) -> None:
        items = list(range(100))
        picked = select(items, sample=10, seed=42)
        assert picked == select(items, sample=10, seed=42) and picked == sorted(picked) and len(set(picked)) == 10
        assert picked != select(items, sample=10, seed=7)
        assert select(items[:5], sample=10) == items[:5]

    @pytest.mark.parametrize(
        ("options", "words"),
        [
            ({"limit": 2, "sample": 2}, "limit and sample cannot both be set: limit takes the first items"),
            ({"limit": 0}, "limit must be a whole number of at least 1, not 0"),
            ({"sample": True}, "sample must be a whole number of at least 1, not True"),
        ],
    )
    def test_bad_options(self, sample: VqaSampleFiles, options: dict[str, int], words: str) -> None:
        assert one_line_error(vqa_source(sample, **options)).startswith(words)

    def test_a_sample_of_the_dataset(self, sample: VqaSampleFiles) -> None:
        dataset = load_dataset(vqa_source(sample, sample=3, seed=1))
        assert isinstance(dataset, Dataset) and dataset.total == len(SAMPLE) and len(dataset.items) == 3
        assert dataset.items == load_dataset(vqa_source(sample, sample=3, seed=1)).items


def test_unknown_format_and_missing_path() -> None:
    assert one_line_error(DatasetSource("parquet")) == "unknown dataset format 'parquet' (known: vqa2, jsonl, csv)"
    assert one_line_error(DatasetSource("jsonl")) == "a jsonl dataset needs path (the jsonl file)"
