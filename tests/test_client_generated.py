"""What keeps ``linqra_client`` honest: its models are what the served schema generates, its
sync client is what ``unasync`` makes of the async one, ``docs/python.md`` documents the code
as it is, every error the server raises has its class, and the package needs nothing of the
server (no Ray, no FastAPI, no ``linqra``)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

import linqra.errors as server_errors
from linqra_client import errors as client_errors

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "client" / "linqra_client"
GENERATED = {PACKAGE / "models.py", *(PACKAGE / "_sync").glob("*.py")}


def test_generated_parts_match_the_served_schema_and_the_async_client() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scripts.client_codegen", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _server_error_classes() -> list[type[server_errors.LinqraError]]:
    found, todo = [], [server_errors.LinqraError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


@pytest.mark.parametrize("cls", _server_error_classes(), ids=lambda c: c.__name__)
def test_every_server_error_has_a_client_class_with_its_status(
    cls: type[server_errors.LinqraError],
) -> None:
    body = {"error": {"code": cls.code, "message": "m", "request_id": "r"}}
    response = httpx.Response(cls.status, json=body, request=httpx.Request("GET", "http://x/"))
    error = client_errors.error_from_response(response)
    assert error.code == cls.code and error.status == cls.status and error.request_id == "r"
    if cls.status in (400, 413, 422):
        assert isinstance(error, client_errors.InvalidRequest)
    else:
        assert type(error).status_code == cls.status, (cls.__name__, type(error).__name__)


def test_the_client_needs_nothing_of_the_server() -> None:
    code = (
        "import sys, linqra_client, linqra_client._sync.client, linqra_client._async.client\n"
        "heavy = {'ray', 'linqra', 'deployments', 'actors', 'fastapi', 'starlette'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    declared = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    names = {
        dep.split(">")[0].split("<")[0].split("=")[0].strip() for dep in declared["dependencies"]
    }
    assert names == {"httpx", "httpx-sse", "pydantic", "websockets"}


def test_hand_written_client_modules_stay_small() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in GENERATED and (lines := len(path.read_text().splitlines())) > 500
    }
    assert long == {}


def test_the_notebooks_and_the_cli_use_the_client_not_raw_http() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "deployments").glob("*cli*.py")
        if "urllib.request" in path.read_text()
    ]
    assert offenders == []
