"""Scoring: the official VQA normalisation and metrics on worked examples, the judge's prompt and reply, intervals."""

from __future__ import annotations

import pytest

from vlmtui.scoring.judge import (
    DEFAULT_JUDGE_PROMPT,
    JudgePromptError,
    check_judge_prompt,
    format_references,
    judge_prompt,
    parse_judge_reply,
)
from vlmtui.scoring.metrics import (
    Metric,
    MetricError,
    Score,
    anls,
    exact,
    levenshtein,
    parse_metric,
    relaxed,
    score,
    score_all,
    vqa,
)
from vlmtui.scoring.normalise import normalise
from vlmtui.scoring.stats import ScoreSummary, summarise, summarise_by, t_quantile, wilson_interval


def ten(answer: str, given_by: int, other: str = "blue") -> list[str]:
    """Ten annotators' answers of which ``given_by`` said ``answer``."""
    return [answer] * given_by + [other] * (10 - given_by)


class TestNormalise:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Two dogs.", "2 dogs"),
            ("  Yes\n", "yes"),
            ("red\tcar", "red car"),
            ("The red one", "red 1"),
            ("an apple", "apple"),
            ("none", "0"),
            ("ten", "10"),
            ("yes!", "yes"),
            ("(red)", "red"),
            ("red, white", "red white"),  # ", " : the comma is next to a space, removed
            ("red,white", "red white"),  # no space beside it: it becomes one
            ("black-and-white", "black and white"),
            ("1,000", "1000"),  # a digit,digit comma: every mark is removed, none becomes a space
            ("10,000 people, maybe.", "10000 people maybe"),
            ("3.5", "3.5"),  # a period before a digit stays
            ("3.5.", "3.5"),
            ("e.g.", "eg"),
            ("dont", "don't"),
            ("Isnt it", "isn't it"),
            ("Im", "im"),  # the official table's key is "Im", matched after lower-casing: never
            ("**Red**", "**red**"),  # * is not in the official punctuation list
        ],
    )
    def test_official_rules(self, text: str, expected: str) -> None:
        assert normalise(text) == expected

    @pytest.mark.parametrize("text", ["Two dogs.", "10,000 people, maybe.", "The red-ish car (maybe)!", "I dont know"])
    def test_idempotent(self, text: str) -> None:
        assert normalise(normalise(text)) == normalise(text)


class TestVqa:
    @pytest.mark.parametrize(
        ("given_by", "expected"),
        # For each of the 10 references, min(1, matches among the other 9 / 3), averaged:
        # 1 of 10: (1·0 + 9·1/3)/10 = 0.3; 2: (2·1/3 + 8·2/3)/10 = 0.6; 3: (3·2/3 + 7·1)/10 = 0.9; 4+: 1.
        [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)],
    )
    def test_leave_one_out_consensus(self, given_by: int, expected: float) -> None:
        assert vqa("red", ten("red", given_by)) == expected

    def test_more_than_ten_references_use_the_same_rule(self) -> None:
        # 12 references, 2 say "red": (2·1/3 + 10·2/3)/12 = 22/36.
        assert vqa("red", ["red"] * 2 + ["blue"] * 10) == pytest.approx(22 / 36)

    def test_fewer_than_ten_references_need_one_match(self) -> None:
        assert vqa("Dog.", ["cat", "dog"]) == 1.0
        assert vqa("bird", ["cat", "dog"]) == 0.0

    def test_digits_articles_and_punctuation_next_to_digits(self) -> None:
        assert vqa("Two", ten("2", 10)) == 1.0
        assert vqa("a cat", ten("the cat", 10)) == 1.0
        assert vqa("1,000", ten("1000", 10)) == 1.0
        assert vqa("3.5", ten("3.5", 10)) == 1.0
        assert vqa("3.5", ten("35", 10)) == 0.0

    def test_references_are_normalised_too(self) -> None:
        assert vqa("2", ["two"] * 7 + ["3"] * 3) == 1.0
        assert vqa("3", ["2"] * 7 + ["two", "3", "3"]) == 0.6

    def test_a_verbose_answer_is_not_equal(self) -> None:
        assert vqa("No, it appears to be evening.", ten("no", 10)) == 0.0


class TestExact:
    def test_any_normalised_reference(self) -> None:
        assert exact("Red.", ["blue", "red"]) == 1.0
        assert exact("red", ten("red", 1)) == 1.0  # no consensus: one annotator is enough
        assert exact("dark red", ["red"]) == 0.0


class TestRelaxed:
    def test_yes_no_by_the_first_yes_or_no_word(self) -> None:
        assert relaxed("No, it appears to be evening.", ten("no", 10)) == 1.0
        assert relaxed("I know it is snowing", ten("no", 10)) == 0.0  # "no" inside "know" and "snowing"
        assert relaxed("Yes, and no dogs", ["yes"]) == 1.0
        assert relaxed("Yes, and no dogs", ["no"]) == 0.0

    def test_other_references_by_contiguous_words(self) -> None:
        assert relaxed("There are two circles.", ["2"]) == 1.0
        assert relaxed("It is dark red.", ["dark red"]) == 1.0
        assert relaxed("red, and dark", ["dark red"]) == 0.0  # in order
        assert relaxed("dark and red", ["dark red"]) == 0.0  # contiguous
        assert relaxed("reddish", ["red"]) == 0.0  # whole words

    def test_same_consensus_as_vqa(self) -> None:
        assert relaxed("I count 3 of them", ["3"] * 2 + ["2"] * 8) == 0.6
        assert relaxed("bird", ["cat", "dog"]) == 0.0

    def test_an_empty_reference_matches_only_an_empty_answer(self) -> None:
        assert relaxed("red", ["."]) == 0.0
        assert relaxed("", ["."]) == 1.0


class TestAnls:
    def test_levenshtein(self) -> None:
        assert levenshtein("kitten", "sitting") == 3
        assert levenshtein("", "abc") == 3
        assert levenshtein("same", "same") == 0

    def test_similarity_below_the_threshold(self) -> None:
        assert anls("hello", ["helo"]) == pytest.approx(0.8)  # 1 − 1/5
        assert anls("abcde", ["abxye"]) == pytest.approx(0.6)  # NL 0.4 < 0.5

    def test_at_or_beyond_the_threshold_scores_zero(self) -> None:
        assert anls("abcd", ["abxy"]) == 0.0  # NL exactly 0.5
        assert anls("abc", ["xyz"]) == 0.0

    def test_best_over_references_after_normalisation(self) -> None:
        assert anls("Hello!", ["world", "hello"]) == 1.0
        assert anls("hello", ["helo", "hell"]) == pytest.approx(0.8)
        assert anls("", [""]) == 1.0


class TestRegistry:
    def test_parse(self) -> None:
        assert parse_metric("vqa") == Metric("vqa")
        assert parse_metric("judge:qwen-2b") == Metric("judge:qwen-2b", judge_model="qwen-2b")
        assert parse_metric("judge:qwen-2b").is_judge

    @pytest.mark.parametrize(("name", "words"), [("vqa2", "unknown metric 'vqa2'"), ("judge:", "names no model")])
    def test_bad_names_are_one_line(self, name: str, words: str) -> None:
        with pytest.raises(MetricError) as caught:
            parse_metric(name)
        assert words in str(caught.value) and "\n" not in str(caught.value)

    def test_unknown_lists_the_known(self) -> None:
        with pytest.raises(MetricError, match=r"known: vqa, exact, relaxed, anls, judge:<model-id>"):
            parse_metric("bleu")

    def test_score(self) -> None:
        assert score("vqa", "red", ten("red", 2)) == Score(0.6)
        assert score("relaxed", "No.", ["no"]) == Score(1.0)

    def test_no_references_is_none_with_a_reason(self) -> None:
        assert score("vqa", "red", []) == Score(None, "no reference answers")
        assert score("anls", "red", ["", " "]) == Score(None, "no reference answers")

    def test_a_judge_metric_is_not_scored_here(self) -> None:
        with pytest.raises(MetricError, match="judge"):
            score("judge:m", "red", ["red"])

    def test_score_all_leaves_judges_out(self) -> None:
        assert score_all(["vqa", "relaxed", "judge:m"], "It is red.", ten("red", 10)) == (
            {"vqa": 0.0, "relaxed": 1.0},
            {},
        )
        assert score_all(["exact"], "red", []) == ({"exact": None}, {"exact": "no reference answers"})


class TestJudgePrompt:
    def test_default_holds_question_references_and_answer(self) -> None:
        prompt = judge_prompt("What color is the square?", ["red"] * 8 + ["maroon"] * 2, " Red. ")
        assert "Question: What color is the square?" in prompt
        assert '"red" (8 of 10); "maroon" (2 of 10)' in prompt
        assert "Answer to grade: Red." in prompt
        assert "score: 1" in prompt

    def test_references(self) -> None:
        assert format_references(["yes"]) == '"yes"'
        assert format_references([]) == "(none)"

    def test_custom_template_filled_in_one_pass(self) -> None:
        template = "Q={question} R={references} A={answer}"
        assert judge_prompt("is it {answer}?", ["x"], "{question}", template) == 'Q=is it {answer}? R="x" A={question}'

    def test_template_checks(self) -> None:
        check_judge_prompt(DEFAULT_JUDGE_PROMPT)
        with pytest.raises(JudgePromptError, match=r"unknown placeholder \{reply\}"):
            check_judge_prompt("{answer} {reply}")
        with pytest.raises(JudgePromptError, match=r"no \{answer\}"):
            check_judge_prompt("{question}")


class TestJudgeReply:
    @pytest.mark.parametrize(
        ("reply", "expected"),
        [
            ("score: 0.8", 0.8),
            ("Score: 1", 1.0),
            ("SCORE = 0", 0.0),
            ("8/10", 0.8),
            ("0.5/1", 0.5),
            ("Score: 7 out of 10", 0.7),
            ("The answer names the right colour.\nScore: 0.9", 0.9),
            ("rating: .5", 0.5),
            ("80%", 0.8),
            ("0.3", 0.3),
            ("1", 1.0),
            ("yes", 1.0),
            ("YES.", 1.0),
            ("**Yes**, it matches.", 1.0),
            ("No, the square is red.", 0.0),
            ("Correct.", 1.0),
            ("Incorrect", 0.0),
            ("<think>maybe score: 0</think>Yes", 1.0),
        ],
    )
    def test_parsed(self, reply: str, expected: float) -> None:
        value, reason = parse_judge_reply(reply)
        assert reason is None and value == pytest.approx(expected)

    @pytest.mark.parametrize("reply", ["The answer is fine.", "banana", "I know", ""])
    def test_unparseable_quotes_the_reply(self, reply: str) -> None:
        value, reason = parse_judge_reply(reply)
        assert value is None and reason is not None
        assert f'"{reply}"' in reason and "\n" not in reason

    def test_out_of_range(self) -> None:
        value, reason = parse_judge_reply("Score: 8")
        assert value is None and reason is not None and "outside 0–1" in reason
        assert parse_judge_reply("11/10").value is None

    def test_a_long_reply_is_cut_in_the_reason(self) -> None:
        reason = parse_judge_reply("words " * 100 + "\nmore").reason
        assert reason is not None and len(reason) < 200 and "\n" not in reason


class TestStats:
    def test_wilson_known_values(self) -> None:
        low, high = wilson_interval(8, 10)
        assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
        low, high = wilson_interval(20, 20)
        assert low == pytest.approx(0.8389, abs=1e-4) and high == 1.0

    def test_t_quantile(self) -> None:
        assert t_quantile(9) == pytest.approx(2.262157, abs=2e-5)
        assert t_quantile(29) == pytest.approx(2.045230, abs=2e-5)

    def test_zero_one_scores_use_wilson(self) -> None:
        summary = summarise([1.0] * 8 + [0.0] * 2)
        assert summary.method == "wilson" and summary.mean == 0.8 and summary.n == 10
        assert summary.ci95 == wilson_interval(8, 10)

    def test_continuous_scores_use_t(self) -> None:
        # 0.0 … 0.9: mean 0.45, s = √(0.825/9); half width t(9)·s/√10 = 0.21659.
        summary = summarise([i / 10 for i in range(10)])
        assert summary.method == "t" and summary.mean == pytest.approx(0.45)
        assert summary.ci95 is not None
        assert summary.ci95 == (pytest.approx(0.23341, abs=1e-4), pytest.approx(0.66659, abs=1e-4))

    def test_t_is_clipped_to_the_unit_range(self) -> None:
        summary = summarise([1.0] * 9 + [0.6])
        assert summary.ci95 is not None and summary.ci95[1] == 1.0

    def test_no_interval_below_ten_and_none_is_unscored(self) -> None:
        summary = summarise([1.0] * 9 + [None, None])
        assert (summary.mean, summary.n, summary.ci95, summary.unscored) == (1.0, 9, None, 2)
        assert summarise([None]) == ScoreSummary(mean=None, n=0, unscored=1)

    def test_as_dict(self) -> None:
        assert summarise([1.0] * 3).as_dict() == {"mean": 1.0, "n": 3, "ci95": None}
        shaped = summarise([1.0] * 10 + [None]).as_dict()
        assert shaped["n"] == 10 and len(shaped["ci95"]) == 2 and shaped["unscored"] == 1

    def test_by_answer_type(self) -> None:
        groups = summarise_by([("yes/no", 1.0), ("number", 0.0), ("yes/no", 0.0), (None, 1.0)])
        assert list(groups) == ["number", "yes/no"]
        assert groups["yes/no"].mean == 0.5 and groups["yes/no"].n == 2
