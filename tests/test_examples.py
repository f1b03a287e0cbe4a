"""The example workflows in configs/examples run end to end against a local HTTP service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.cli import _load_workflow
from linqra.system import System

EXAMPLES = Path(__file__).resolve().parents[1] / "configs" / "examples"


async def test_quote_example_in_process(system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's quote workflow offline: service, transforms, then LLM steps answered locally."""
    for key in ("OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    body, params = _load_workflow(EXAMPLES / "quote_workflow.json")
    definition = system.service.validate_definition(body)
    ex = await system.service.new_execution("team-a", definition=definition, params=params)
    runner = system.runner("examples")
    await runner.submit("team-a", ex["id"])
    record = await runner.wait("team-a", ex["id"], 30)
    assert record["status"] == "COMPLETED", record["error"]
    steps = {s["step"]: s["output"] for s in record["steps"]}
    assert steps[3].startswith("One saying by ") and steps[3].endswith(" about courage")
    saying = steps[4]["choices"][0]["message"]["content"]
    assert saying.startswith("[local model]") and steps[4]["fallback"]["provider"] == "local"
    assert steps[4]["requested_model"] == "openai:gpt-4o"
    assert record["result"]["requested_model"] == "gemini:gemini-2.0-flash"
    assert record["result"]["text"].startswith("[local model]")
    step5 = next(s for s in record["steps"] if s["step"] == 5)
    assert step5["inputs"]["payload"][0]["content"] == f"Name the language of: {saying}"


async def test_parallel_example_in_process(system: System) -> None:
    body, _ = _load_workflow(EXAMPLES / "parallel_workflow.json")
    wf = await system.service.create("team-a", {"name": "parallel", **body})
    ex = await system.service.new_execution("team-a", workflow_id=wf["id"])
    runner = system.runner("examples")
    await runner.submit("team-a", ex["id"])
    record = await runner.wait("team-a", ex["id"], 30)
    assert record["result"] == {
        "topic": "calm",
        "authors": ["Marcus Aurelius", "Seneca", "Epictetus"],
    }


@pytest.mark.ray
def test_linq_example_over_http(api: httpx.Client) -> None:
    body = json.loads((EXAMPLES / "quote_workflow.json").read_text())
    out = api.post("/linq", json=body).json()
    assert out["metadata"]["status"] == "success"
    steps = {s["step"]: s["result"] for s in out["result"]["steps"]}
    assert steps[3].endswith("about courage")
    # in the test cluster "openai" is a local server speaking OpenAI's protocol; gemini has no key
    assert steps[4]["text"] == f"Echo: {steps[3]}." and steps[4]["provider"] == "openai"
    assert out["result"]["finalResult"]["provider"] == "local"


@pytest.mark.ray
def test_linqra_run_as_a_ray_driver(ray_cluster: Any, api: httpx.Client) -> None:
    """`linqra run` connects to the running cluster and runs through its runner actor."""
    env = {**os.environ, "LINQRA_RAY__NAMESPACE": "linqra-test"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployments.cli",
            "run",
            str(EXAMPLES / "parallel_workflow.json"),
            "--team",
            "team-a",
            "--param",
            "topic=courage",
            "--address",
            ray_cluster.address_info["gcs_address"],
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    record = json.loads(out.stdout[out.stdout.index("{") :])
    assert record["status"] == "COMPLETED" and record["source"] == "driver"
    assert record["result"]["topic"] == "courage"
    # the same execution is visible through the HTTP API
    assert api.get(f"/v1/executions/{record['id']}").json()["status"] == "COMPLETED"


@pytest.mark.ray
def test_linqra_run_rejects_an_invalid_file(ray_cluster: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"steps": [{"step": 1, "target": "nope"}]}))
    env = {**os.environ, "LINQRA_RAY__NAMESPACE": "linqra-test"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployments.cli",
            "run",
            str(bad),
            "--team",
            "team-a",
            "--address",
            ray_cluster.address_info["gcs_address"],
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 2 and "unknown step target 'nope'" in out.stdout


@pytest.mark.ray
def test_linqra_run_submitted_as_a_ray_job(ray_cluster: Any, api: httpx.Client) -> None:
    """`ray job submit -- linqra run …`: the Jobs API runs the driver on the cluster."""
    import time

    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(f"http://{ray_cluster.dashboard_url}")
    entrypoint = f"{sys.executable} -m deployments.cli run {EXAMPLES / 'quote_workflow.json'} --team team-jobs --json"
    job = client.submit_job(
        entrypoint=entrypoint,
        runtime_env={"env_vars": {"LINQRA_RAY__NAMESPACE": "linqra-test"}},
    )
    deadline = time.monotonic() + 180
    status = client.get_job_status(job)
    while (
        status not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
        status = client.get_job_status(job)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    record = json.loads(logs[logs.index("{") :])
    assert record["status"] == "COMPLETED"
    assert {s["step"]: s["output"] for s in record["steps"]}[3].endswith("about courage")
    with httpx.Client(base_url=str(api.base_url), headers={"X-Team-Id": "team-jobs"}) as jobs_team:
        assert jobs_team.get(f"/v1/executions/{record['id']}").json()["source"] == "driver"


@pytest.mark.ray
def test_linqra_status_reports_gateway_and_runner(ray_cluster: Any, gateway_url: str) -> None:
    env = {
        **os.environ,
        "LINQRA_RAY__NAMESPACE": "linqra-test",
        "LINQRA_HTTP__PORT": gateway_url.rsplit(":", 1)[1],
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployments.cli",
            "status",
            "--address",
            ray_cluster.address_info["gcs_address"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert '"status":"ok"' in out.stdout and "runner: {'runner_id': 'linqra-runner'" in out.stdout
