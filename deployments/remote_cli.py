"""What every ``linqra`` command that talks to a running Linqra shares.

Remote commands go through the gateway's HTTP API with :class:`linqra_client.Linqra`. Each takes
``--url`` (default ``$LINQRA_URL``, else ``http://HOST:PORT`` of the config's ``http`` section),
``--team`` (``$LINQRA_TEAM``; all a gateway in header mode needs) and ``--json`` (the API's
models as JSON, for scripts); an API key or an OIDC access token comes from ``$LINQRA_API_KEY``
or ``$LINQRA_TOKEN``. An error is one line on stderr, ``linqra <command>: <error>`` (the API's
status, code, field and request id), and the exit status says what kind: 2 for bad input (an
invalid request, an unknown id, bad arguments), 1 for everything else — a gateway that does not
answer says so and how to start one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pydantic

if TYPE_CHECKING:  # imported where used: linqra_client's models take ~0.4 s to import, which
    # `linqra up` (and every command's --help) paid before doing anything (docs/benchmarks.md, B3)
    from linqra_client import Linqra, RetryPolicy

__all__ = [
    "CREDENTIALS_HINT",
    "UsageError",
    "common_options",
    "complain",
    "connect",
    "emit_json",
    "gateway_url",
    "has_credentials",
    "parse_params",
    "remote",
    "say",
    "wants_json",
]

RemoteCommand = Callable[["Linqra", argparse.Namespace], int]
CREDENTIALS_HINT = "give --team TEAM (or set LINQRA_TEAM, LINQRA_API_KEY or LINQRA_TOKEN)"


class UsageError(Exception):
    """Arguments the command cannot use (a malformed ``KEY=VALUE``, a missing file): exit 2."""


def say(text: str = "") -> None:
    print(text, flush=True)


def complain(command: str, message: object) -> None:
    """The one line an error is: ``linqra <command>: <message>`` on stderr."""
    print(f"linqra {command}: {message}", file=sys.stderr, flush=True)


def parse_params(pairs: list[str], option: str = "--param") -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``--param``, ``--metadata``); a value is JSON when it parses."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} needs KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def common_options() -> argparse.ArgumentParser:
    """``--url``, ``--team`` and ``--json``, for ``parents=[…]`` of every remote command's
    parser. Their defaults are *suppressed*, so that ``linqra executions --json list`` and
    ``linqra executions list --json`` both work (a nested parser's default would overwrite the
    value its parent parsed)."""
    common = argparse.ArgumentParser(add_help=False)
    options = common.add_argument_group("gateway")
    options.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="the gateway (default: $LINQRA_URL, else http://HOST:PORT from the config)",
    )
    options.add_argument(
        "--team", default=argparse.SUPPRESS, help="team id (default: $LINQRA_TEAM)"
    )
    options.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the API's answer as JSON",
    )
    return common


def gateway_url(args: argparse.Namespace) -> str:
    """``--url``, else ``$LINQRA_URL``, else the configured gateway's address."""
    url = getattr(args, "url", None) or os.environ.get("LINQRA_URL")
    if url:
        return str(url).rstrip("/")
    from linqra.config import load_settings

    try:
        http = load_settings().http
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise UsageError(
            f"the config does not load ({where}: {error['msg']}); give --url"
        ) from None
    host = "127.0.0.1" if http.host in ("", "0.0.0.0", "::") else http.host
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if http.tls else 'http'}://{host}:{http.port}"


def has_credentials(args: argparse.Namespace) -> bool:
    return bool(
        getattr(args, "team", None)
        or os.environ.get("LINQRA_TEAM")
        or os.environ.get("LINQRA_API_KEY")
        or os.environ.get("LINQRA_TOKEN")
    )


def connect(args: argparse.Namespace, *, retry: RetryPolicy | None = None) -> Linqra:
    """A client of the gateway as the command's caller (the key or token from the env)."""
    from linqra_client import Linqra

    return Linqra(gateway_url(args), team=getattr(args, "team", None), retry=retry)


def remote(
    handler: RemoteCommand, *, needs_credentials: bool = True
) -> Callable[[argparse.Namespace], int]:
    """``handler(client, args)`` as a command: the client opened and closed, the API's errors
    and a gateway that is not there turned into one line and an exit status."""

    def command(args: argparse.Namespace) -> int:
        from linqra_client import (
            InvalidRequest,
            InvalidResponse,
            LinqraError,
            NotFound,
            ServerUnreachable,
        )

        name = getattr(args, "name", None) or args.command
        if needs_credentials and not has_credentials(args):
            complain(name, CREDENTIALS_HINT)
            return 2
        url = "the gateway"
        try:
            url = gateway_url(args)
            with connect(args) as client:
                return handler(client, args)
        except UsageError as exc:
            complain(name, exc)
            return 2
        except ServerUnreachable:
            complain(name, not_running(url))
            return 1
        except InvalidResponse as exc:  # an answer this client cannot read
            complain(name, f"unexpected answer from {url}: {exc.message}")
            return 1
        except (InvalidRequest, NotFound) as exc:
            complain(name, exc)
            return 2
        except LinqraError as exc:
            complain(name, exc)
            return 1
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return 130

    return command


def not_running(url: str) -> str:
    return (
        f"no Linqra gateway answers at {url} — start one with `make run` (or `linqra up`), "
        "or point --url / $LINQRA_URL at a running one"
    )


def dump(value: Any) -> Any:
    """The API's models (or lists of them) as plain JSON data."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


def emit_json(value: Any) -> None:
    say(json.dumps(dump(value), indent=2, default=str))


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))
