"""Backend discovery: the built-ins through their own entry points, plug-ins from a dist-info, broken ones."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fixtures.plugin_site import install_echo, write_dist_info
from vlmtui import plugins
from vlmtui.engine.plan import skip_reason
from vlmtui.plugins import (
    BackendDeclaration,
    BackendNotFound,
    Capabilities,
    Option,
    TinyModels,
    discover,
    find_backend,
)
from vlmtui.wire.source import ModelSource
from vlmtui.wire.spec import ModelSpec


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for hand-made distributions; discovery rescans with it and without it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.refresh()
    yield tmp_path
    monkeypatch.undo()
    for name in [m for m in sys.modules if m.startswith(("vlmtui_echo", "broken_plugin"))]:
        del sys.modules[name]
    plugins.refresh()


def test_the_built_ins_register_through_entry_points_like_any_plug_in() -> None:
    found = discover()
    assert {"transformers", "mlx-vlm", "openai"} <= set(found.backends)
    assert found.origins["transformers"].startswith("vlmtui ")
    assert find_backend("mlx-vlm").packages == ("mlx", "mlx_vlm")
    assert find_backend("openai").preflight is False and find_backend("transformers").preflight is True
    assert find_backend("transformers").capabilities.memory_limit is True


def test_an_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(BackendNotFound, match=r"must be one of .*transformers.*, got 'onnx'"):
        find_backend("onnx")


def test_a_dist_info_on_sys_path_is_enough(site: Path) -> None:
    install_echo(site)
    plugins.refresh()
    echo = find_backend("echo")
    assert echo.implementation == "vlmtui_echo.backend:EchoBackend"
    assert discover().origins["echo"] == "vlmtui_echo 0.1"
    assert "vlmtui_echo.backend" not in sys.modules, "the declaration alone is read in this process"


def test_a_broken_plug_in_is_left_out_with_one_line(site: Path) -> None:
    (site / "broken_plugin.py").write_text("import no_such_module_anywhere\n")
    (site / "misnamed_plugin.py").write_text(
        "from vlmtui.plugins import BackendDeclaration\nX = BackendDeclaration(name='other', implementation='a:B')\n")
    write_dist_info(site, "broken_plugin", "1.0", {"broken": "broken_plugin:X", "misnamed": "misnamed_plugin:X"})
    plugins.refresh()
    found = discover()
    assert "transformers" in found.backends and "broken" not in found.backends
    with pytest.raises(BackendNotFound) as info:
        find_backend("broken")
    assert str(info.value) == ("the plug-in 'broken' (broken_plugin 1.0) failed to load: "
                               "ModuleNotFoundError: No module named 'no_such_module_anywhere'")
    assert "does not name a BackendDeclaration called 'misnamed'" in found.problems["misnamed"]


def test_the_same_name_from_two_distributions_is_a_problem(site: Path) -> None:
    write_dist_info(site, "impostor", "2.0", {"transformers": "vlmtui.plugins.builtin:TRANSFORMERS"})
    plugins.refresh()
    with pytest.raises(BackendNotFound, match=r"'transformers' is registered twice \(.*impostor 2.0"):
        find_backend("transformers")
    assert "openai" in discover().backends


def test_register_in_process() -> None:
    fake = BackendDeclaration(name="fake-in-process", implementation="x:Y")
    plugins.register(fake)
    try:
        assert find_backend("fake-in-process") is fake
        assert discover().origins["fake-in-process"] == "registered in-process"
    finally:
        plugins.discovery._registered.pop("fake-in-process")


def test_options_defaults_and_tiny_families() -> None:
    decl = BackendDeclaration(
        name="x", implementation="x:Y", options=(Option("device", str, "auto"), Option("n", int, None)),
        tiny=TinyModels("x", {"idefics3": "m:f"}),
    )
    assert decl.with_defaults({"n": 3}) == {"device": "auto", "n": 3}
    assert decl.option("device") is not None and decl.option("nope") is None
    assert decl.tiny_problem(ModelSource.parse("tiny:smolvlm")) is None
    assert decl.tiny_problem(ModelSource.parse("org/model")) is None
    moon = ModelSource.parse("tiny:moondream2")
    expected = "tiny:moondream2 has no x build (it exists for: mlx-vlm)"
    assert decl.tiny_problem(moon, (find_backend("mlx-vlm"),)) == expected
    assert decl.tiny_problem(ModelSource.parse("tiny:nope")) == "unknown tiny model 'tiny:nope' (known: tiny:idefics3)"


def test_reading_every_declaration_imports_no_worker_code_and_no_framework() -> None:
    code = (
        "import sys\n"
        "from vlmtui.plugins import backends\n"
        "import vlmtui.suite.loader, vlmtui.memory.preflight\n"
        "names = [d.name for d in backends()]\n"
        "assert {'transformers', 'mlx-vlm', 'openai'} <= set(names), names\n"
        "heavy = ('torch', 'transformers', 'mlx', 'mlx_vlm', 'openai', 'vlmtui.worker')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_plan_skips_what_a_backend_declares_it_cannot_do() -> None:
    plugins.register(BackendDeclaration(name="images-only", implementation="x:Y",
                                        capabilities=Capabilities(text_only=False)))
    try:
        model = ModelSpec(id="m", backend="images-only", path="/models/m")
        assert skip_reason(model, "text", None) == "the images-only backend cannot run a prompt without an image"
        assert skip_reason(model, "image", None) is None
        assert skip_reason(ModelSpec(id="t", backend="transformers", path="/models/m"), "text", None) is None
    finally:
        plugins.discovery._registered.pop("images-only")


def test_a_family_declared_not_built_is_refused_with_its_reason() -> None:
    decl = BackendDeclaration(name="x", implementation="x:Y",
                              tiny=TinyModels("x", {"idefics3": "m:f"}, not_built={"phi3-v": "the tower is fixed"}))
    assert decl.tiny_problem(ModelSource.parse("tiny:phi3-v")) == "tiny:phi3-v has no x build: the tower is fixed"
    assert decl.tiny_problem(ModelSource.parse("tiny:idefics3")) is None
    assert "phi3-v" not in decl.tiny_families
