"""Generate the parts of ``linqra_client`` that are derived from something else (``make client``):

* ``models.py`` — pydantic models of the API's schema (the one ``create_app().openapi()``
  serves), by ``datamodel-code-generator``. Inline JSON request bodies are first named
  ``<Operation>Body`` components, so that each has a model the client validates against
  before sending (``create_workflow`` → ``CreateWorkflowBody``).
* ``_sync/`` — the blocking client, from the asyncio one in ``_async/``, by ``unasync``.
* the reference section of ``docs/python.md``, from the clients' docstrings
  (:mod:`scripts.client_reference`).

``--check`` writes nothing and exits 1 naming what is out of date (the test suite runs the
same comparisons in ``tests/test_client_generated.py``).
"""

from __future__ import annotations

import argparse
import copy
import filecmp
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "client" / "linqra_client"

# What unasync renames beyond its defaults (async/await, __aenter__, AsyncIterator, …).
SYNC_NAMES = {
    "AsyncLinqra": "Linqra",
    "AsyncClient": "Client",
    "AsyncPager": "Pager",
    "AsyncWorkflows": "Workflows",
    "AsyncExecutions": "Executions",
    "AsyncKnowledge": "Knowledge",
    "AsyncAssistants": "Assistants",
    "AsyncConversations": "Conversations",
    "AsyncChatStream": "ChatStream",
    "AsyncChatSocket": "ChatSocket",
    "AsyncAgents": "Agents",
    "AsyncTasks": "Tasks",
    "AsyncEvents": "Events",
    "AsyncLLM": "LLM",
    "AsyncAdmin": "Admin",
    "aconnect_sse": "connect_sse",
    "aiter_sse": "iter_sse",
    "aread": "read",
    "aclose": "close",
    "asleep": "sleep",
    "aconnect_ws": "connect_ws",
    "aread_file": "read_file",
    "_async": "_sync",
}


GENERATED = (
    "# Generated from linqra_client/_async by scripts/client_codegen.py (unasync): do not edit.\n"
)


def served_schema() -> dict[str, Any]:
    """The OpenAPI document the gateway serves (no server started)."""
    from deployments.app import create_app

    return create_app().openapi()


def _function_name(operation: dict[str, Any], path: str, method: str) -> str:
    """The route function's name, from FastAPI's operation id (``name + path + _method``)."""
    operation_id = str(operation["operationId"])
    suffix = re.sub(r"\W", "_", path) + "_" + method.lower()
    return operation_id[: -len(suffix)] if operation_id.endswith(suffix) else operation_id


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part)


def with_named_bodies(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each inline JSON request body moved to a component ``<Function>Body``."""
    schema = copy.deepcopy(schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path in sorted(schema.get("paths", {})):
        for method, operation in sorted(schema["paths"][path].items()):
            content = (operation.get("requestBody") or {}).get("content") or {}
            body = (content.get("application/json") or {}).get("schema")
            if not isinstance(body, dict) or "$ref" in body or body.get("type") != "object":
                continue
            if not body.get("properties"):
                continue
            name = f"{_pascal(_function_name(operation, path, method))}Body"
            if name in components:
                raise SystemExit(f"{name} names two request bodies; rename one route function")
            body = dict(body, title=name)
            components[name] = body
            content["application/json"]["schema"] = {"$ref": f"#/components/schemas/{name}"}
    return schema


def generate_models(schema: dict[str, Any], out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "openapi.json"
        source.write_text(json.dumps(with_named_bodies(schema), sort_keys=True))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "datamodel_code_generator",
                "--input",
                str(source),
                "--input-file-type",
                "openapi",
                "--output",
                str(out),
                "--output-model-type",
                "pydantic_v2.BaseModel",
                "--target-python-version",
                "3.11",
                "--use-annotated",
                "--field-constraints",
                "--use-standard-collections",
                "--use-union-operator",
                "--use-schema-description",
                "--use-double-quotes",
                "--enum-field-as-literal",
                "all",
                "--collapse-root-models",
                "--disable-timestamp",
                "--formatters",
                "ruff-check",
                "ruff-format",
                "--custom-file-header",
                '"""The API\'s schema as pydantic models. Generated by scripts/client_codegen.py '
                'from the\nserved OpenAPI document: do not edit (``make client``)."""',
            ],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )


def generate_sync(out_dir: Path) -> None:
    """``out_dir/linqra_client/_sync`` from ``_async`` (``out_dir`` holds a copy of ``_async``)."""
    import unasync

    source = out_dir / "linqra_client" / "_async"
    files = sorted(str(p) for p in source.glob("*.py"))
    rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=SYNC_NAMES)
    unasync.unasync_files(files, rules=[rule])
    for path in sorted((out_dir / "linqra_client" / "_sync").glob("*.py")):
        path.write_text(GENERATED + path.read_text())
    target = str(out_dir / "linqra_client" / "_sync")
    for command in (["check", "--fix-only", "-q", "--select", "I,F401"], ["format", "-q"]):
        subprocess.run([sys.executable, "-m", "ruff", *command, target], check=True, cwd=ROOT)


def _differs(a: Path, b: Path) -> bool:
    if a.is_dir():
        names = {p.name for p in a.glob("*.py")} | {p.name for p in b.glob("*.py")}
        return any(_differs(a / n, b / n) for n in sorted(names))
    return not (a.exists() and b.exists() and filecmp.cmp(a, b, shallow=False))


def build_code(tmp: Path, schema: dict[str, Any]) -> dict[str, tuple[Path, Path]]:
    """The generated code, in ``tmp``: ``{what: (generated, committed)}``."""
    (tmp / "linqra_client").mkdir(parents=True, exist_ok=True)
    shutil.copytree(PACKAGE / "_async", tmp / "linqra_client" / "_async", dirs_exist_ok=True)
    generate_sync(tmp)
    generate_models(schema, tmp / "models.py")
    return {
        "client/linqra_client/models.py": (tmp / "models.py", PACKAGE / "models.py"),
        "client/linqra_client/_sync": (tmp / "linqra_client" / "_sync", PACKAGE / "_sync"),
    }


def build_docs(tmp: Path) -> dict[str, tuple[Path, Path]]:
    """``docs/python.md`` with the reference of the client as installed (import it after the
    code is written)."""
    from scripts.client_reference import reference_markdown, splice

    docs = ROOT / "docs" / "python.md"
    page = docs.read_text() if docs.exists() else "# Python client\n"
    (tmp / "python.md").write_text(splice(page, reference_markdown()))
    return {"docs/python.md": (tmp / "python.md", docs)}


def _write(outputs: dict[str, tuple[Path, Path]], names: list[str]) -> None:
    for name in names:
        new, old = outputs[name]
        if new.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            shutil.copytree(new, old, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(new, old)
        print(f"wrote {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say what is out of date")
    parser.add_argument("--docs", action="store_true", help="only the docs reference")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {} if args.docs else build_code(Path(tmp), served_schema())
        if args.check:
            outputs |= build_docs(Path(tmp))
        stale = [name for name, (new, old) in outputs.items() if _differs(new, old)]
        if args.check:
            for name in stale:
                print(f"{name} is out of date: run `make client`")
            return 1 if stale else 0
        _write(outputs, stale)
        if args.docs:
            docs = build_docs(Path(tmp))
            _write(docs, [n for n, (new, old) in docs.items() if _differs(new, old)])
    if not args.docs:  # the reference reads the code just written: a fresh interpreter
        subprocess.run(
            [sys.executable, "-m", "scripts.client_codegen", "--docs"], check=True, cwd=ROOT
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
