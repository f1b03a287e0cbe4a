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
from tests.support.servers import PEOPLE

EXAMPLES = Path(__file__).resolve().parents[1] / "configs" / "examples"


async def test_quote_example_in_process(system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's quote workflow offline: service, transforms, then LLM steps answered locally."""
    for key in ("OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    body, params = _load_workflow(EXAMPLES / "quote_workflow.json")
    definition = system.workflows.validate_definition(body)
    runner = system.runner("examples")
    records = []
    for _ in range(2):  # the second run finds what the first one stored
        ex = await system.workflows.new_execution("team-a", definition=definition, params=params)
        await runner.submit("team-a", ex["id"])
        record = await runner.wait("team-a", ex["id"], 60)
        assert record["status"] == "COMPLETED", record["error"]
        records.append({s["step"]: s["output"] for s in record["steps"]})
    first, second = records
    assert first[2] == {"collection": "sayings", "results": [], "count": 0}
    saying = first[3]["choices"][0]["message"]["content"]
    assert saying.startswith("[local model]") and first[3]["fallback"]["provider"] == "local"
    assert first[3]["requested_model"] == "openai:gpt-4o"
    assert first[4]["requested_model"] == "gemini:gemini-2.0-flash"
    author = first[5]["metadata"]["author"]
    assert author in {p["fullName"] for p in PEOPLE}
    assert first[5]["status"] == "READY" and first[5]["metadata"]["topic"] == "courage"
    assert first[5]["metadata"]["language"] == first[4]["text"]
    found = second[2]["results"]
    assert found and found[0]["text"] == saying and found[0]["metadata"]["author"] == author
    # the stored sayings are Knowledge Hub documents of the team, searchable by author
    hits = await system.knowledge.search(
        "team-a", "sayings", query="saying", top_k=5, filter={"author": author}
    )
    assert {h["metadata"]["author"] for h in hits} == {author}


async def test_parallel_example_in_process(system: System) -> None:
    body, _ = _load_workflow(EXAMPLES / "parallel_workflow.json")
    wf = await system.workflows.create("team-a", {"name": "parallel", **body})
    ex = await system.workflows.new_execution("team-a", workflow_id=wf.id)
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
    assert out["metadata"]["status"] == "success", out
    steps = {s["step"]: s["result"] for s in out["result"]["steps"]}
    person = steps[1]["fullName"]
    # in the test cluster "openai" is a local server speaking OpenAI's protocol; gemini has no key
    assert steps[3]["text"] == f"Echo: One saying by {person} about courage."
    assert steps[3]["provider"] == "openai" and steps[4]["provider"] == "local"
    stored = out["result"]["finalResult"]
    assert stored["status"] == "READY" and stored["metadata"]["author"] == person
    hits = api.post(
        "/v1/knowledge/collections/sayings/search",
        json={"query": steps[3]["text"], "top_k": 1},
    ).json()["results"]
    assert hits[0]["document_id"] == stored["id"] and hits[0]["text"] == steps[3]["text"]


@pytest.mark.ray
def test_linqra_run_as_a_ray_driver(ray_cluster: Any, api: httpx.Client) -> None:
    """`linqra run --ray` connects to the running cluster and runs through its runner actor."""
    env = {**os.environ, "LINQRA_RAY__NAMESPACE": "linqra-test"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployments.cli",
            "run",
            str(EXAMPLES / "parallel_workflow.json"),
            "--ray",
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
            "--ray",
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
    """`ray job submit -- linqra run … --ray`: the Jobs API runs the driver on the cluster."""
    import time

    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(f"http://{ray_cluster.dashboard_url}")
    entrypoint = f"{sys.executable} -m deployments.cli run {EXAMPLES / 'quote_workflow.json'} --ray --team team-jobs --json"
    deadline = time.monotonic() + 180
    while True:  # the dashboard's job agent comes up some seconds after the cluster
        try:
            job = client.submit_job(
                entrypoint=entrypoint,
                runtime_env={
                    "env_vars": {
                        "LINQRA_RAY__NAMESPACE": "linqra-test",
                        # this cluster, not another one on the machine (a bench, a README test)
                        "RAY_ADDRESS": ray_cluster.address_info["gcs_address"],
                    }
                },
            )
            break
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
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
    steps = {s["step"]: s["output"] for s in record["steps"]}
    assert steps[3]["text"].endswith("about courage.") and steps[5]["status"] == "READY"
    with httpx.Client(base_url=str(api.base_url), headers={"X-Team-Id": "team-jobs"}) as jobs_team:
        answer = jobs_team.get(f"/v1/executions/{record['id']}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["source"] == "driver"


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
    assert f"gateway:    {gateway_url} ok (version" in out.stdout
    assert "runner: {'runner_id': 'linqra-runner'" in out.stdout
