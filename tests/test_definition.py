"""Workflow definitions: Linqra's step shape, validated with errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from linqra.config import ServiceConfig, Settings
from linqra.errors import ValidationError
from linqra.steps import default_registry
from linqra.workflows.definition import parse_definition

REGISTRY = default_registry(
    Settings(services={"quotes-service": ServiceConfig(urls=["http://127.0.0.1:1"])})
)


def parse(data: Any) -> Any:
    return parse_definition(data, known_target=REGISTRY.check_step)


def fails(data: Any) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        parse(data)
    return err.value


def test_linqra_quote_workflow_shape_is_accepted() -> None:
    definition = parse(
        {
            "steps": [
                {
                    "step": 1,
                    "target": "quotes-service",
                    "action": "fetch",
                    "intent": "/api/people/random",
                    "cacheConfig": {"enabled": True, "ttl": "3600"},
                    "description": "pick a person",
                },
                {
                    "step": 2,
                    "target": "transform",
                    "params": {"expression": "fullName", "input": "{{step1.result}}"},
                    "condition": "{{step1.result.born}} > 0",
                    "jump": {"condition": "{{step1.result.fullName}} == 'x'", "targetStep": 0},
                },
                {
                    "step": 3,
                    "target": "http",
                    "action": "create",
                    "intent": "http://127.0.0.1:9/x",
                    "payload": [{"role": "user", "content": "{{step2.result}}"}],
                    "async": True,
                    "stream": False,
                    "llmConfig": {"model": "m", "settings": {"temperature": 0.2}},
                    "summary": "s",
                },
            ]
        }
    )
    assert definition.mode == "sequential"
    assert (
        definition.steps[0].cacheConfig is not None and definition.steps[0].cacheConfig.ttl == 3600
    )
    assert definition.steps[2].async_ is True
    assert definition.to_json()["steps"][2]["async"] is True


def test_dag_dependencies_come_from_references_and_depends_on() -> None:
    definition = parse(
        {
            "mode": "dag",
            "steps": [
                {"step": 1, "target": "noop"},
                {"step": 2, "target": "noop"},
                {
                    "step": 3,
                    "target": "noop",
                    "params": {"a": "{{step1.result}}"},
                    "dependsOn": [2],
                },
                {
                    "step": 4,
                    "target": "noop",
                    "params": {"a": "{{step3.result.x??step2.result.y}}"},
                },
            ],
        }
    )
    assert definition.dependencies() == {
        1: frozenset(),
        2: frozenset(),
        3: frozenset({1, 2}),
        4: frozenset({2, 3}),
    }


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"steps": []}, "steps", "at least 1"),
        ({"steps": [{"step": 1, "target": "noop", "bogus": 1}]}, "steps[0].bogus", "Extra inputs"),
        ({"steps": [{"step": "one", "target": "noop"}]}, "steps[0].step", "integer"),
        (
            {"steps": [{"step": 1, "target": "nope"}]},
            "steps[0].target",
            "unknown step target 'nope'",
        ),
        (
            {"steps": [{"step": 1, "target": "quotes-service", "action": "get", "intent": "/x"}]},
            "steps[0].action",
            "fetch",
        ),
        (
            {"steps": [{"step": 1, "target": "noop"}, {"step": 1, "target": "noop"}]},
            "steps[1].step",
            "used twice",
        ),
        (
            {
                "steps": [
                    {"step": 1, "target": "noop", "params": {"a": "{{step2.result}}"}},
                    {"step": 2, "target": "noop"},
                ]
            },
            "steps[0].params.a",
            "later step2",
        ),
        (
            {"steps": [{"step": 1, "target": "noop", "params": {"a": "{{step7.result}}"}}]},
            "steps[0].params.a",
            "unknown step7",
        ),
        (  # the reference is named where it is, however deep
            {
                "steps": [
                    {"step": 1, "target": "noop", "params": {"a": {"b": ["x", "{{step1.result}}"]}}}
                ]
            },
            "steps[0].params.a.b[1]",
            "refers to itself",
        ),
        (
            {"steps": [{"step": 1, "target": "noop", "params": {"a": "{{stepx.result}}"}}]},
            "steps[0].params",
            "unknown reference",
        ),
        (
            {
                "mode": "dag",
                "steps": [
                    {"step": 1, "target": "noop", "dependsOn": [2]},
                    {"step": 2, "target": "noop", "params": {"a": "{{step1.result}}"}},
                ],
            },
            "steps",
            "cycle: step1 -> step2 -> step1",
        ),
        (
            {
                "mode": "dag",
                "steps": [
                    {"step": 1, "target": "noop", "jump": {"condition": "1 == 1", "targetStep": 0}}
                ],
            },
            "steps[0].jump",
            "sequential",
        ),
        (
            {
                "steps": [
                    {"step": 1, "target": "noop", "jump": {"condition": "1 == 1", "targetStep": 9}}
                ]
            },
            "steps[0].jump.targetStep",
            "not a step",
        ),
        (
            {"steps": [{"step": 1, "target": "noop", "condition": "{{params.a}} >"}]},
            "steps[0].condition",
            "invalid",
        ),
        (
            {
                "steps": [
                    {"step": 1, "target": "noop", "cacheConfig": {"enabled": True, "ttl": "soon"}}
                ]
            },
            "steps[0].cacheConfig.ttl",
            "whole number",
        ),
        ({"mode": "parallel", "steps": [{"step": 1, "target": "noop"}]}, "mode", "sequential"),
        (
            {
                "steps": [
                    {"step": 1, "target": "transform", "params": {"expression": "a[", "input": 1}}
                ]
            },
            "steps[0].params.expression",
            "JMESPath",
        ),
        (
            {"steps": [{"step": 1, "target": "http", "action": "fetch", "intent": "ftp://x"}]},
            "steps[0].intent",
            "http",
        ),
        (
            {
                "steps": [
                    {"step": 1, "target": "noop", "async": True},
                    {"step": 2, "target": "noop", "params": {"a": "{{step1.result}}"}},
                ]
            },
            "steps[1].params.a",
            "async step1",
        ),
        (
            {"steps": [{"step": 1, "target": "noop", "timeoutSeconds": -1}]},
            "steps[0].timeoutSeconds",
            "greater than 0",
        ),
    ],
)
def test_bad_definitions_name_the_field(data: Any, field: str, words: str) -> None:
    err = fails(data)
    assert err.field == field, err.to_dict()
    assert words in err.message, err.message
    assert err.status == 400


def test_nesting_limit() -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    err = fails({"steps": [{"step": 1, "target": "noop", "params": deep}]})
    assert err.field == "steps[0].params" and "nested deeper" in err.message
