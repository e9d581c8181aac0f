"""ModelSource: the one rule that tells a tiny family, a local directory and a hub repo apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmtui.wire.source import ModelSource
from vlmtui.wire.spec import ModelSpec


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("tiny:idefics3", "tiny", "idefics3"),
        ("tiny:SmolVLM", "tiny", "idefics3"),
        (" tiny: llava ", "tiny", "llava-next"),
        ("tiny:nonesuch", "tiny", "nonesuch"),
        ("", "none", ""),
        ("/models/smol", "local", "/models/smol"),
        ("./smol", "local", "./smol"),
        ("../up/smol", "local", "../up/smol"),
        ("~/models/smol", "local", "~/models/smol"),
        ("a/b/c", "local", "a/b/c"),
        ("llava:7b", "local", "llava:7b"),
        ("HuggingFaceTB/SmolVLM-500M-Instruct", "hub", "HuggingFaceTB/SmolVLM-500M-Instruct"),
        ("gpt2", "hub", "gpt2"),
        ("mlx-community/llava-v1.6-mistral-7b-4bit", "hub", "mlx-community/llava-v1.6-mistral-7b-4bit"),
    ],
)
def test_kinds(tmp_path: Path, text: str, kind: str, name: str) -> None:
    source = ModelSource.parse(text, base_dir=tmp_path)
    assert (source.kind, source.name) == (kind, name)


def test_an_existing_directory_wins_over_a_hub_id_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "org" / "model").mkdir(parents=True)
    assert ModelSource.parse("org/model", base_dir=tmp_path).is_local
    assert ModelSource.parse("org/other", base_dir=tmp_path).is_hub
    (tmp_path / "org" / "file").write_text("not a directory")
    assert ModelSource.parse("org/file", base_dir=tmp_path).is_hub


def test_only_a_hub_repo_keeps_its_revision() -> None:
    hub = ModelSource.parse("org/model", "v1.2")
    assert (hub.revision, str(hub)) == ("v1.2", "org/model@v1.2")
    assert str(ModelSource.parse("org/model")) == "org/model"
    assert ModelSource.parse("tiny:smolvlm", "main").revision is None
    assert ModelSource.parse("/models/x", "main").revision is None
    assert str(ModelSource.parse("tiny:smolvlm")) == "tiny:idefics3"


def test_local_path_is_expanded_and_anchored(tmp_path: Path) -> None:
    assert ModelSource.parse("./m").local_path(tmp_path) == tmp_path / "m"
    assert ModelSource.parse("/abs/m").local_path(tmp_path) == Path("/abs/m")
    assert ModelSource.parse("~/m").local_path(tmp_path) == Path.home() / "m"
    with pytest.raises(ValueError, match="not a local path"):
        ModelSource.parse("org/model").local_path()


def test_the_spec_reads_its_source_once_and_travels_without_it() -> None:
    spec = ModelSpec(id="m", backend="mlx-vlm", path="org/model", revision="abc", options={"device": "cpu"})
    assert spec.source == ModelSource("hub", "org/model", "abc")
    assert spec.source is spec.source
    data = spec.to_dict()
    assert "source" not in data and data["options"] == {"device": "cpu"}
    again = ModelSpec.from_dict(data)
    assert again == spec and again.source == spec.source
    assert hash(again) == hash(spec)


def test_a_suite_anchors_only_paths_written_as_paths(tmp_path: Path) -> None:
    suite_dir = tmp_path / "suites"
    assert ModelSource.parse("./m").anchored(suite_dir) == ModelSource("local", str(suite_dir / "m"))
    assert ModelSource.parse("../m").anchored(suite_dir) == ModelSource("local", str(tmp_path / "m"))
    assert ModelSource.parse("~/m").anchored(suite_dir).name == str(Path.home() / "m")
    for text in ("a/b/c", "org/model", "tiny:smolvlm", ""):
        source = ModelSource.parse(text, base_dir=tmp_path)
        assert source.anchored(suite_dir) == source
