from __future__ import annotations

import pytest

from linqra.workflows.conditions import ConditionError, check_condition, evaluate_condition
from linqra.workflows.interpolation import MissingReference, Scope, references, render, render_text

SCOPE = Scope(
    params={"topic": "courage", "n": 3, "q": "a b&c"},
    results={
        1: {"fullName": "Seneca", "tags": ["stoic", "writer"], "count": 2, "ok": False},
        3: {"choices": [{"message": {"content": "Be brave."}}]},
    },
)


def test_whole_value_keeps_its_type() -> None:
    assert render("{{step1.result.tags}}", SCOPE) == ["stoic", "writer"]
    assert render("{{step1.result.count}}", SCOPE) == 2
    assert render("{{ params.n }}", SCOPE) == 3
    assert render({"x": ["{{step1.result}}"]}, SCOPE) == {"x": [SCOPE.results[1]]}


def test_embedded_values_become_text() -> None:
    assert (
        render("By {{step1.result.fullName}} on {{params.topic}}", SCOPE) == "By Seneca on courage"
    )
    assert (
        render("tags={{step1.result.tags}} ok={{step1.result.ok}}", SCOPE)
        == 'tags=["stoic","writer"] ok=false'
    )
    assert render("{{step3.result.choices[0].message.content}}", SCOPE) == "Be brave."


def test_fallbacks() -> None:
    assert render("{{step2.result.id??step1.result.fullName}}", SCOPE) == "Seneca"
    assert render("{{step1.result.changed??false}}", SCOPE) is False
    assert render("{{params.missing??'none given'}}", SCOPE) == "none given"
    assert render("{{params.missing??0}}", SCOPE) == 0


def test_missing_path_names_the_path() -> None:
    with pytest.raises(MissingReference) as err:
        render("{{step1.result.tags[5]}}", SCOPE)
    assert "step1.result.tags" in str(err.value) and "[5]" in str(err.value)
    with pytest.raises(MissingReference, match="step2 has no result"):
        render("x {{step2.result.a}}", SCOPE)
    with pytest.raises(MissingReference, match="no key 'nope'"):
        render("{{params.nope}}", SCOPE)


def test_url_encoding_of_embedded_values() -> None:
    from urllib.parse import quote

    assert (
        render_text("http://h/x?q={{params.q}}", SCOPE, encode=lambda s: quote(s, safe=""))
        == "http://h/x?q=a%20b%26c"
    )


def test_references_and_malformed_expressions() -> None:
    assert references(
        {"a": "{{step1.result.x}} {{step3.result.y??step2.result.z}}", "b": ["{{params.q}}"]}
    ) == {1, 2, 3}
    for bad in ("{{ }}", "{{foo.bar}}", "{{step1.x}}", "{{'lit'}}"):
        with pytest.raises(ValueError):
            references(bad)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{{step1.result.count}} > 0", True),
        ("{{step1.result.count}} > 5", False),
        ("{{step1.result.ok}} == false", True),
        ("{{params.topic}} == 'courage' && {{params.n}} >= 3", True),
        ("{{params.topic}} == courage", True),
        ("!{{step1.result.ok}}", True),
        ("not ({{params.n}} < 2 or {{step1.result.ok}})", True),
        ("{{step2.result.x??false}}", False),
        ("'3' == {{params.n}}", True),
    ],
)
def test_conditions(condition: str, expected: bool) -> None:
    assert evaluate_condition(condition, SCOPE) is expected


def test_condition_values_cannot_inject_operators() -> None:
    scope = Scope({"evil": "1 || true"}, {})
    assert evaluate_condition("{{params.evil}} == '1 || true'", scope) is True
    assert evaluate_condition("{{params.evil}} == 1", scope) is False


@pytest.mark.parametrize("bad", ["", "{{params.a}} >", "(1 == 1", "1 == 1)", "== 2"])
def test_malformed_conditions(bad: str) -> None:
    with pytest.raises(ConditionError):
        check_condition(bad)
