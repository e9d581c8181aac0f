"""JUnit reports valid against junit-10.xsd, the schema Jenkins' xunit plugin checks JUnit files with
(jenkinsci/xunit-plugin; copied to tests/fixtures/junit-10.xsd): every status, scored cases and conversation
turns, validated with xmlschema."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from tests.conftest import ROOT
from tests.conversation_replay import case_id
from tests.conversation_replay import write_log as write_conversation_log
from tests.fixtures.scored_log import write_scored_log
from tests.unit.test_report import session_log  # noqa: F401 (the fixture: a log with every status)
from vlmtui.reports.records import load_log
from vlmtui.reports.report import render_report


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(ROOT / "tests" / "fixtures" / "junit-10.xsd")


def junit(log: Path) -> str:
    return render_report(load_log(log), "junit")


def test_the_schema_catches_what_strict_consumers_refuse(schema: xmlschema.XMLSchema) -> None:
    """The validator is not lenient: the two shapes the reports used to have are refused."""
    assert not schema.is_valid('<testsuites tests="1" skipped="0"><testsuite tests="1"/></testsuites>')
    assert not schema.is_valid('<testsuites><testsuite tests="1"><testcase name="a"><properties/></testcase>'
                               "</testsuite></testsuites>")


def test_every_status_is_valid(schema: xmlschema.XMLSchema, session_log: Path) -> None:  # noqa: F811
    text = junit(session_log)
    schema.validate(text)
    root = ET.fromstring(text)
    assert root.get("skipped") is None, "skipped is counted per <testsuite>"
    assert sum(int(s.get("skipped") or 0) for s in root.findall("testsuite")) == 2


def test_scored_cases_are_valid_with_their_scores_as_suite_properties(schema: xmlschema.XMLSchema,
                                                                      tmp_path: Path) -> None:
    text = junit(write_scored_log(tmp_path / "scored.jsonl"))
    schema.validate(text)
    root = ET.fromstring(text)
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["smol/vqa-sample/2000:score.vqa"] == "0.6"
    assert props["smol/vqa-sample/2000:primary_metric"] == "vqa"


def test_conversations_are_valid_with_each_turn(schema: xmlschema.XMLSchema, tmp_path: Path) -> None:
    text = junit(write_conversation_log(tmp_path / "context.jsonl"))
    schema.validate(text)
    root = ET.fromstring(text)
    failed = case_id("smolvlm-500m", "lake")
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert [props[f"{failed}:turn.{n}.status"] for n in (1, 2, 3)] == ["passed", "failed", "passed"]
    case = next(c for c in root.iter("testcase") if c.get("name") == failed)
    out = case.findtext("system-out") or ""
    assert "turn 2 [failed] What were the most prominent colours?" in out and "  why: " in out
