"""Cold start (issue 15, part 5): what every process pays to import, kept from growing back.

Every Linqra actor process imports :mod:`actors.cluster`'s world (through :mod:`actors._context`
and :mod:`linqra.system`), and every ``linqra`` command imports :mod:`deployments.cli`. Modules
only some paths use are imported where they are used; these tests import each entry point in a
fresh interpreter and name what must not have come with it. They assert on presence, not on
time: timing is for ``python -X importtime`` (docs/benchmarks.md, "B3 — cold start").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

OIDC_ONLY = ("linqra.auth.oidc", "aiohttp", "jwt")
"""Verifying OIDC tokens (~0.12 s): an OIDC gateway's, loaded by ``linqra.system`` when
``auth.mode`` is ``oidc`` or by the first use of ``linqra.auth.OidcVerifier``."""
CLIENT = ("linqra_client",)
"""The HTTP client of the API (~0.4 s, its generated models): a remote command's, on its run."""


def _imported_after(code: str) -> dict[str, object]:
    """``sys.modules`` names (and whatever else ``code`` puts in ``out``) after running ``code``
    in a fresh interpreter."""
    script = f"import json, sys\nout = {{}}\n{code}\nout['modules'] = sorted(sys.modules)\n"
    script += "print(json.dumps(out))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _loaded(modules: object, names: tuple[str, ...]) -> list[str]:
    assert isinstance(modules, list)
    return [name for name in names if name in modules]


@pytest.fixture(scope="module")
def actor_process() -> dict[str, object]:
    return _imported_after(
        "import actors.cluster\n"
        "from linqra.auth.directory import TeamInput\n"
        "out['team_input_built'] = TeamInput.__pydantic_complete__\n"
    )


def test_an_actor_process_loads_no_oidc_verifier_at_import(
    actor_process: dict[str, object],
) -> None:
    assert _loaded(actor_process["modules"], OIDC_ONLY) == []


def test_the_platform_admins_team_input_is_built_on_first_use_not_at_import(
    actor_process: dict[str, object],
) -> None:
    assert actor_process["team_input_built"] is False  # its user-id pattern compiles in ~70 ms


def test_the_linqra_command_loads_no_api_client_before_a_remote_command_runs() -> None:
    after = _imported_after("import deployments.cli\n")
    assert _loaded(after["modules"], CLIENT + OIDC_ONLY) == []


def test_the_oidc_names_of_linqra_auth_still_resolve_on_first_use() -> None:
    after = _imported_after(
        "import linqra.auth\n"
        "out['before'] = 'linqra.auth.oidc' in sys.modules\n"
        "from linqra.auth import MAX_TOKEN_CHARS, Identity, InvalidToken, OidcVerifier\n"
        "import linqra.auth.oidc as oidc\n"
        "out['same'] = OidcVerifier is oidc.OidcVerifier and Identity is oidc.Identity\n"
        "try:\n"
        "    linqra.auth.NoSuchName\n"
        "except AttributeError:\n"
        "    out['unknown'] = 'AttributeError'\n"
    )
    assert after["before"] is False
    assert after["same"] is True
    assert after["unknown"] == "AttributeError"


def test_a_chat_host_loads_a_first_turns_modules_ahead_of_it() -> None:
    """What a chat's first turn would load on its event loop (holding the run's heartbeat) a new
    chat host loads in a thread (``actors.chat_host``): the token counter's ranks
    and the OpenAI SDK as it starts, and before a turn the SDK of that turn's provider only."""
    result = _imported_after(
        "import asyncio\n"
        "import actors.chat_host as chat_host\n"
        "from linqra.config import LLMSettings\n"
        "out['before'] = [m for m in ('openai', 'anthropic', 'bpe_openai') if m in sys.modules]\n"
        "chat_host.preload()\n"
        "from linqra.llm.tokens import _encoding\n"
        "out['ranks_loaded'] = _encoding.cache_info().currsize\n"
        "out['at_start'] = [m for m in ('openai', 'anthropic') if m in sys.modules]\n"
        "asyncio.run(chat_host.load_provider_sdk(LLMSettings(), 'anthropic'))\n"
        "asyncio.run(chat_host.load_provider_sdk(LLMSettings(), 'local'))  # none to load\n"
    )
    assert result["before"] == []
    assert result["ranks_loaded"] == 1
    assert result["at_start"] == ["openai"]
    assert _loaded(result["modules"], ("anthropic", "google.genai")) == ["anthropic"]
