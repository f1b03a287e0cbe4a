"""The cluster configs are what Ray and KubeRay themselves accept, and they agree with Linqra.

- ``cluster.yaml`` (AWS) and ``configs/cluster-local.yaml`` (one machine) pass the checks
  ``ray up`` makes before it touches a cloud: ``prepare_config`` and ``validate_config`` against
  Ray's ``ray-schema.json``; each node installs this venv's Ray; ``configs/cluster.env.example``
  names only real settings and is sourced by bash as written.
- ``configs/serve.yaml`` is a ``serve deploy`` config: Ray Serve's ``ServeDeploySchema``, no key
  Serve would ignore, an ``import_path`` that imports.
- ``deployments/kuberay/rayservice.yaml`` validates against the RayService CRD of KubeRay
  v1.7.0 (vendored in ``tests/data/kuberay/``; unknown fields refused, as ``kubectl apply``'s
  strict field validation does) and the operator's own checks; its ``serveConfigV2`` is the
  Serve config; its pods get the settings, secrets and volumes Linqra needs.

A live run of the local config (a head and fake worker nodes, a Ray job with the repository as
its ``working_dir``) is ``tests/test_cluster_jobs.py``.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
import ray
import yaml
from pydantic import BaseModel

from linqra.auth.keys import PEPPER_ENV
from linqra.config import Settings
from linqra.secrets.keyring import ENV_VAR as MASTER_KEYS_ENV
from linqra.secrets.keyring import KeyringError, load_keyring, new_key_entry

ROOT = Path(__file__).resolve().parents[1]
KUBE = ROOT / "deployments" / "kuberay"
CRD = ROOT / "tests" / "data" / "kuberay" / "ray.io_rayservices.yaml.gz"
# the CRD file of KubeRay v1.7.0 (tests/data/kuberay/README.md): its sha256 and git blob id
CRD_SHA256 = "0a8fc325e6e22b9231c1f282b309555e2ecf94227ca20a03df3d1d9a403907ab"
CRD_GIT_BLOB = "7ee63d6ddd11237a5649e04b3a8db3c52074c867"
RAY_VERSION = ray.__version__


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _docs(path: Path) -> dict[str, dict[str, Any]]:
    """A manifest file's documents by kind."""
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text()) if d}


# -- the Ray cluster launcher ---------------------------------------------------------------------
def _ray_up_checks(config: dict[str, Any]) -> dict[str, Any]:
    """What ``ray up`` does to a config before it asks the cloud anything
    (``ray.autoscaler._private.commands._bootstrap_config``)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def _provider_keys_ray_reads() -> set[str]:
    """Provider keys Ray knows: the schema's, and every name the autoscaler's code spells out
    (the schema lets any provider key through, so a misspelt one would be ignored silently)."""
    from ray import autoscaler

    base = Path(autoscaler.__file__).parent
    schema = json.loads((base / "ray-schema.json").read_text())
    known = set(schema["properties"]["provider"]["properties"])
    for path in base.rglob("*.py"):
        known |= set(re.findall(r"""["']([a-z][a-z0-9_]*)["']""", path.read_text()))
    return known


def test_the_aws_config_passes_ray_ups_checks() -> None:
    config = _yaml(ROOT / "cluster.yaml")
    prepared = _ray_up_checks(config)
    assert config["provider"]["type"] == "aws"
    assert set(config["provider"]) <= _provider_keys_ray_reads()
    assert prepared["head_node_type"] == "head"
    assert prepared["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert prepared["available_node_types"]["cpu_worker"]["max_workers"] <= config["max_workers"]


def test_a_config_ray_would_refuse_fails_the_same_checks() -> None:
    config = _yaml(ROOT / "cluster.yaml")
    config["available_node_types"]["cpu_worker"]["node_confg"] = {}
    with pytest.raises(jsonschema.ValidationError, match="node_confg"):
        _ray_up_checks(config)
    assert "regoin" not in _provider_keys_ray_reads()


def test_every_aws_node_gets_linqra_this_ray_and_the_settings() -> None:
    config = _yaml(ROOT / "cluster.yaml")
    assert config["file_mounts"] == {
        "~/linqra": ".",  # `ray up` runs in the repository's root
        "~/linqra.env": "~/.config/linqra/cluster.env",
    }
    assert ".gitignore" in config["rsync_filter"]  # no .venv, node_modules or data copied
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {".venv/", "console/node_modules/", ".linqra/"} <= set(ignored)
    setup = "\n".join(config["setup_commands"])
    assert f'"ray[serve,default]=={RAY_VERSION}"' in setup  # the Ray that runs `ray up`
    assert "-e ~/linqra/client -e ~/linqra" in setup  # as `make install` does
    assert "python3.11 -m venv ~/venv" in setup
    assert "boto3" in " ".join(config["head_setup_commands"])  # the autoscaler launches with it
    head, worker = config["head_start_ray_commands"][-1], config["worker_start_ray_commands"][-1]
    found = re.search(r"--port=(\d+)", head)
    assert found is not None, head
    port = found.group(1)
    assert f"--address=$RAY_HEAD_IP:{port}" in worker
    for start in (head, worker):  # Ray, so every actor and job, runs with the settings
        assert start.startswith("set -a && . ~/linqra.env && set +a && cd ~/linqra && ")
    lists = ("setup_commands", "head_setup_commands", "head_start_ray_commands")
    for command in [c for key in lists for c in config[key]] + config["worker_start_ray_commands"]:
        assert subprocess.run(["bash", "-n", "-c", command]).returncode == 0, command  # parses
    amis = {t["node_config"]["ImageId"] for t in config["available_node_types"].values()}
    assert len(amis) == 1 and re.fullmatch(r"ami-[0-9a-f]{8,17}", amis.pop())


def _env_template(path: Path) -> dict[str, str]:
    """Every ``NAME=value`` of an env file, commented-out ones too (those may be filled in)."""
    names: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            value = shlex.split(match.group(2)) if match.group(2) else [""]
            names[match.group(1)] = value[0] if value else ""
    return names


def _setting_exists(name: str) -> bool:
    """``LINQRA_A__B`` names the setting ``a.b`` (pydantic-settings: prefix, ``__`` nesting)."""
    model: type[BaseModel] | None = Settings
    for part in name.removeprefix("LINQRA_").lower().split("__"):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        model = next((a for a in (annotation, *get_args(annotation)) if _is_model(a)), None)
    return True


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


# read from the environment where they are used, deliberately not settings (docs/security.md)
SECRET_ENV = {MASTER_KEYS_ENV, PEPPER_ENV}
PROVIDER_ENV = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "CO_API_KEY"}
RAY_ENV = {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}  # Ray's token authentication


def _real_names(names: set[str]) -> set[str]:
    """The names that are neither a setting nor a variable Linqra or Ray reads."""
    from ray._private.authentication_test_utils import _AUTH_ENV_VARS

    providers = {p.api_key_env for p in Settings().llm.providers.values() if p.api_key_env}
    assert providers >= PROVIDER_ENV and set(_AUTH_ENV_VARS) >= RAY_ENV
    return {
        n
        for n in names
        if not (_setting_exists(n) if n.startswith("LINQRA_") else n in PROVIDER_ENV | RAY_ENV)
        and n not in SECRET_ENV
    }


def test_the_cluster_env_template_names_only_real_settings() -> None:
    names = _env_template(ROOT / "configs" / "cluster.env.example")
    assert {"LINQRA_PROFILE", "LINQRA_STORE_URL", MASTER_KEYS_ENV, PEPPER_ENV} <= set(names)
    assert names["RAY_AUTH_MODE"] == "token"
    assert _real_names(set(names)) == set()
    assert not _setting_exists("LINQRA_KNOWLEDGE__VECTOR_URL")  # the check can fail


def _sourced(path: Path) -> dict[str, str]:
    """The environment bash makes of an env file, as the start commands load it."""
    script = f"set -a; . {shlex.quote(str(path))}; set +a; exec {sys.executable} -c " + shlex.quote(
        "import json, os; print(json.dumps(dict(os.environ)))"
    )
    out = subprocess.run(["bash", "-c", script], env={}, capture_output=True, text=True, check=True)
    env: dict[str, str] = json.loads(out.stdout)
    return env


def test_the_cluster_env_template_makes_production_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _sourced(ROOT / "configs" / "cluster.env.example")
    assert env["LINQRA_STORE_URL"].endswith("?replicaSet=rs0&authSource=admin")  # quoted right
    for name in [n for n in env if n.startswith("LINQRA_")]:
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("LINQRA_CONFIG", raising=False)
    monkeypatch.chdir(ROOT)  # Ray starts in the checkout: configs/linqra.yaml, then these
    settings = Settings()
    assert settings.profile == "production" and settings.auth.mode == "oidc"
    assert settings.agents.events_url == "kafka://kafka.internal:9092"
    assert settings.egress.allow_loopback is False
    with pytest.raises(KeyringError):  # left empty, the keyring stops the start
        load_keyring(settings, env)


# -- the local variant ------------------------------------------------------------------------------
def test_the_local_config_is_complete_for_ray_start() -> None:
    """``ray start --autoscaling-config`` hands the file to the autoscaler as it is: it must pass
    Ray's schema without defaults filled in (Ray's wheel lacks the fake provider's defaults)."""
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_TYPE
    from ray.autoscaler._private.util import validate_config

    config = _yaml(ROOT / "configs" / "cluster-local.yaml")
    validate_config(config)
    assert config["provider"]["type"] == "fake_multinode"
    assert set(config["provider"]) <= _provider_keys_ray_reads()
    assert config["head_node_type"] == FAKE_HEAD_NODE_TYPE
    assert config["available_node_types"][FAKE_HEAD_NODE_TYPE]["resources"] == {"CPU": 0}
    port = config["provider"]["gcs_address"].rsplit(":", 1)[1]
    start = "ray start --head --port={} --node-ip-address=127.0.0.1"
    for page in ("configs/cluster-local.yaml", "docs/operations.md"):
        assert start.format(port) in (ROOT / page).read_text(), page


# -- the Serve config -----------------------------------------------------------------------------
def _models(annotation: Any) -> list[type[BaseModel]]:
    if _is_model(annotation):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models(arg)]


def _unknown_keys(model: type[BaseModel], data: Any, where: str) -> list[str]:
    """Keys Serve's pydantic models would drop without a word (they ignore extra fields)."""
    if not isinstance(data, dict):
        return []
    fields = {**model.model_fields, **{f.alias: f for f in model.model_fields.values() if f.alias}}
    unknown = []
    for key, value in data.items():
        if key not in fields:
            unknown.append(f"{where}.{key}")
            continue
        for sub in _models(fields[key].annotation):
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                unknown += _unknown_keys(sub, item, f"{where}.{key}[{i}]")
    return unknown


def _check_serve_config(config: dict[str, Any]) -> dict[str, Any]:
    """What ``serve deploy`` checks, and what it would not: unknown keys, the import path."""
    from ray._common.utils import import_attr
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    assert _unknown_keys(ServeDeploySchema, config, "config") == []
    (app,) = [a for a in schema.applications if a.name == "linqra"]
    assert callable(import_attr(app.import_path))
    for deployment in config["applications"][0]["deployments"]:
        AutoscalingConfig.model_validate(deployment["autoscaling_config"])
    return {d["name"]: d for d in config["applications"][0]["deployments"]}


def test_the_serve_config_is_what_serve_deploy_accepts() -> None:
    deployments = _check_serve_config(_yaml(ROOT / "configs" / "serve.yaml"))
    assert set(deployments) == {"Gateway", "ChatOrchestrator"}
    for name, options in deployments.items():
        assert options["autoscaling_config"]["min_replicas"] >= 1
        assert options["autoscaling_config"]["max_replicas"] > 1, name


def test_a_key_serve_would_ignore_is_caught() -> None:
    config = _yaml(ROOT / "configs" / "serve.yaml")
    config["applications"][0]["deployments"][0]["autoscalling_config"] = {}
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(config)  # Serve itself says nothing
    assert _unknown_keys(ServeDeploySchema, config, "config") == [
        "config.applications[0].deployments[0].autoscalling_config"
    ]


# -- KubeRay ----------------------------------------------------------------------------------------
def _crd_text() -> bytes:
    return gzip.decompress(CRD.read_bytes())


def _strict(schema: Any) -> Any:
    """The CRD's schema with unknown fields refused where Kubernetes refuses them (strict field
    validation: every object with declared properties, unless it preserves unknown fields)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    declared = "properties" in out and "additionalProperties" not in out
    if declared and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _crd_validator() -> jsonschema.protocols.Validator:
    crd = yaml.safe_load(_crd_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert v1["served"] and v1["storage"]
    return jsonschema.Draft4Validator(_strict(v1["schema"]["openAPIV3Schema"]))


def _errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in
            _crd_validator().iter_errors(doc)]  # fmt: skip


def test_the_vendored_crd_is_kuberays_own() -> None:
    text = _crd_text()
    assert hashlib.sha256(text).hexdigest() == CRD_SHA256
    blob = hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()  # `git rev-parse v1.7.0:…`
    assert blob == CRD_GIT_BLOB
    assert CRD_SHA256 in (CRD.parent / "README.md").read_text()


def test_the_rayservice_validates_against_the_crd() -> None:
    service = _docs(KUBE / "rayservice.yaml")["RayService"]
    assert service["apiVersion"] == "ray.io/v1"
    assert _errors(service) == []


def test_a_wrong_field_fails_the_crd_check() -> None:
    service = _docs(KUBE / "rayservice.yaml")["RayService"]
    group = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    group["maxReplica"] = group.pop("maxReplicas")
    group["minReplicas"] = "1"
    service["spec"]["rayClusterConfig"]["autoscalerOptions"]["upscalingMode"] = "Fast"
    errors = "\n".join(_errors(service))
    assert "'maxReplicas' is a required property" in errors
    assert "'maxReplica' was unexpected" in errors
    assert "'1' is not of type 'integer'" in errors
    assert "'Fast' is not one of" in errors


def test_the_rayservice_passes_kuberays_own_checks() -> None:
    """The operator's checks beyond the schema (ray-operator/controllers/ray/utils/validation.go
    of v1.7.0) that a manifest can fail."""
    service = _docs(KUBE / "rayservice.yaml")["RayService"]
    name = service["metadata"]["name"]
    assert len(name) <= 47 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)  # DNS-1035
    cluster = service["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    groups = cluster["workerGroupSpecs"]
    for group in [head, *groups]:
        assert group["template"]["spec"]["containers"]
        assert "resources" not in group  # resources live in the containers, not both places
        assert group["template"]["spec"].get("restartPolicy", "Never") == "Never"  # autoscaler v2
    for group in groups:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert cluster["enableInTreeAutoscaling"] and cluster["autoscalerOptions"]["version"] == "v2"
    assert cluster["authOptions"] == {"mode": "token"}  # not enableK8sTokenAuth: not for RayService
    assert tuple(map(int, cluster["rayVersion"].split("."))) >= (2, 52, 0)  # token auth's minimum
    head_env = {e["name"] for e in head["template"]["spec"]["containers"][0].get("env", [])}
    assert not head_env & {"REDIS_PASSWORD", "RAY_REDIS_ADDRESS", "REDIS_USERNAME"}  # GCS FT's
    assert "redis-password" not in head["rayStartParams"]


def test_serve_config_v2_is_the_serve_config() -> None:
    service = _docs(KUBE / "rayservice.yaml")["RayService"]
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    deployments = _check_serve_config(config)
    local = _yaml(ROOT / "configs" / "serve.yaml")
    assert deployments == _check_serve_config(local)  # replicas and autoscaling: one source
    differs = {"applications"}
    assert {k: v for k, v in config.items() if k not in differs} == {
        k: v for k, v in local.items() if k not in differs
    }
    (app,), (local_app,) = config["applications"], local["applications"]
    assert {k: v for k, v in app.items() if k != "args"} == {
        k: v for k, v in local_app.items() if k != "args"
    }
    mounted = _mounts(service)["linqra-config"] + "/linqra.yaml"
    assert app["args"] == {"config": mounted}


def _containers(service: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, Ray container) of the head and of each worker group."""
    cluster = service["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]]
    pods += [g["template"]["spec"] for g in cluster["workerGroupSpecs"]]
    return [(pod, pod["containers"][0]) for pod in pods]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    (_pod, container), *_ = _containers(service)
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


def test_every_ray_pod_gets_the_settings_secrets_volumes_and_image() -> None:
    service = _docs(KUBE / "rayservice.yaml")["RayService"]
    config_map = _docs(KUBE / "configmap.yaml")["ConfigMap"]
    claim = _docs(KUBE / "pvc.yaml")["PersistentVolumeClaim"]
    secret = _docs(KUBE / "secret.example.yaml")["Secret"]
    linqra_yaml = yaml.safe_load(config_map["data"]["linqra.yaml"])
    mounts = _mounts(service)
    images = set()
    envs = []
    for pod, container in _containers(service):
        env = {e["name"]: e.get("value") or e["valueFrom"] for e in container["env"]}
        envs.append(env)
        assert env["LINQRA_CONFIG"] == mounts["linqra-config"] + "/linqra.yaml"
        for name in ("LINQRA_STORE_URL", "LINQRA_CACHE_URL"):  # credentials: from the Secret
            ref = env[name]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
        assert env["LINQRA_AGENTS__EVENTS_URL"].startswith("kafka://")
        assert env["LINQRA_KNOWLEDGE__VECTOR_URI"].startswith("http://")
        assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
        assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]} == mounts
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert set(volumes) == set(mounts)
        assert volumes["linqra-config"]["configMap"]["name"] == config_map["metadata"]["name"]
        claim_name = volumes["linqra-blobs"]["persistentVolumeClaim"]["claimName"]
        assert claim_name == claim["metadata"]["name"]
        assert volumes["dshm"]["emptyDir"]["medium"] == "Memory" and mounts["dshm"] == "/dev/shm"
        images.add(container["image"])
    assert all(env == envs[0] for env in envs)  # head and workers alike
    assert _real_names(set(envs[0]) - {"LINQRA_CONFIG"}) == set()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # blobs: read on any pod
    assert linqra_yaml["knowledge"]["blob_dir"] == mounts["linqra-blobs"]
    gcs = service["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert gcs["redisPassword"]["valueFrom"]["secretKeyRef"]["key"] in secret["stringData"]
    kustomization = _yaml(KUBE / "kustomization.yaml")
    assert set(kustomization["resources"]) == {"configmap.yaml", "pvc.yaml", "rayservice.yaml"}
    (image,) = images
    (override,) = kustomization["images"]
    assert image == f"{override['name']}:{override['newTag']}"
    assert service["spec"]["rayClusterConfig"]["rayVersion"] == RAY_VERSION


def test_the_configmap_and_secret_make_production_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_map = _docs(KUBE / "configmap.yaml")["ConfigMap"]
    secret = _docs(KUBE / "secret.example.yaml")["Secret"]["stringData"]
    names = set(secret) | set(_env_template(KUBE / "secret.example.yaml"))
    assert _real_names(names) == {"RAY_GCS_REDIS_PASSWORD"}  # gcsFaultToleranceOptions reads it
    path = tmp_path / "linqra.yaml"
    path.write_text(config_map["data"]["linqra.yaml"])
    (_, container), *_ = _containers(_docs(KUBE / "rayservice.yaml")["RayService"])
    pod_env = {e["name"]: e.get("value") for e in container["env"]}
    for name, value in {**secret, **pod_env}.items():  # the container's own env wins
        monkeypatch.setenv(name, secret[name] if value is None else value)
    monkeypatch.setenv("LINQRA_CONFIG", str(path))
    settings = Settings()
    assert settings.agents.events_url == pod_env["LINQRA_AGENTS__EVENTS_URL"]
    assert settings.knowledge.vector_uri == pod_env["LINQRA_KNOWLEDGE__VECTOR_URI"]
    assert settings.profile == "production" and settings.services == {}
    assert settings.store_url.startswith("mongodb://") and "replicaSet=" in settings.store_url
    assert settings.cache_url.startswith("redis://")
    assert settings.knowledge.vector_token == "root:CHANGE-ME"
    with pytest.raises(KeyringError):  # applied unfilled, the Secret stops the start
        load_keyring(settings)
    monkeypatch.setenv(MASTER_KEYS_ENV, new_key_entry(1))
    assert load_keyring(settings).version == 1


def test_the_kustomization_renders_what_the_crd_accepts() -> None:
    """What ``kubectl apply -k`` sends, for the fields our kustomization uses (no kubectl here:
    its resources, each put in its namespace, the image renamed): the CRD still accepts it."""
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "namespace", "resources", "images"}
    files = [(KUBE / name).read_text() for name in kustomization["resources"]]
    rendered = {d["kind"]: d for text in files for d in yaml.safe_load_all(text) if d}
    assert set(rendered) == {"ConfigMap", "PersistentVolumeClaim", "RayService"}
    for doc in rendered.values():
        assert doc["metadata"].get("namespace") in (None, kustomization["namespace"]), doc["kind"]
        doc["metadata"]["namespace"] = kustomization["namespace"]
    (image,) = kustomization["images"]
    named = json.dumps(rendered["RayService"]).count(f'"{image["name"]}:')
    assert named >= 2, "head and workers run the image the kustomization renames"
    assert _errors(rendered["RayService"]) == []


def test_the_image_is_built_from_this_ray_with_what_linqra_reads() -> None:
    dockerfile = (KUBE / "Dockerfile").read_text()
    assert f"ARG RAY_VERSION={RAY_VERSION}\n" in dockerfile
    assert "FROM rayproject/ray:${RAY_VERSION}-py311" in dockerfile
    copied = re.findall(r"^COPY --chown=\S+ (.+) \S+$", dockerfile, re.M)
    sources = [s.rstrip("/") for line in copied for s in line.split()]
    packages = {"linqra", "actors", "deployments", "client", "configs"}
    assert packages <= set(sources)
    assert all((ROOT / s).exists() for s in sources), sources
    ignore = (KUBE / "Dockerfile.dockerignore").read_text().splitlines()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore and included == set(sources)  # the context: only what is copied
