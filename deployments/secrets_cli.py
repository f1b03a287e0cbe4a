"""``linqra secrets``: the master keyring's maintenance commands (docs/security.md).

``linqra secrets new-key`` prints the entry to put first in ``LINQRA_MASTER_KEYS`` (or the
embedded key file): the next version and 32 random bytes. ``linqra secrets rotate`` opens the
System from the settings and re-seals every team's provider keys and every webhook secret with
the newest master key — run it once every process has the new key — prints the counts and
records them in the platform's audit log (``secrets.rotate``, actor ``cli:<os user>``;
``GET /v1/audit?scope=platform``); it exits 1 when a row did not open. (A module of its own so that ``deployments/cli.py`` stays small.)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from typing import Any

from linqra.config import Settings, load_settings
from linqra.errors import LinqraError
from linqra.secrets import RotationReport, load_keyring
from linqra.secrets.keyring import new_key_entry

__all__ = ["add_secrets_command", "cmd_secrets"]


def add_secrets_command(sub: Any) -> None:
    """Add ``secrets`` to the ``linqra`` command's subparsers."""
    secrets = sub.add_parser("secrets", help="secrets at rest: rotate the master key")
    secrets.add_argument(
        "action",
        choices=["rotate", "new-key"],
        help="rotate: re-seal everything with the newest master key; new-key: print a new entry",
    )
    secrets.set_defaults(func=cmd_secrets)


def cmd_secrets(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        if args.action == "new-key":
            print(new_key_entry(load_keyring(settings).version + 1))
            return 0
        report = asyncio.run(_rotate(settings))
    except LinqraError as exc:
        print(f"linqra secrets {args.action}: {exc.message}", flush=True)
        return 1
    failed = f"; {report.failed} did not open and were left as they were" if report.failed else ""
    print(
        f"re-sealed with master key version {report.key_version}: {report.secrets} provider "
        f"key(s), {report.hooks} webhook secret(s){failed}",
        flush=True,
    )
    return 1 if report.failed else 0


async def _rotate(settings: Settings) -> RotationReport:
    from linqra.system import System  # the whole object graph: only when rotating

    system = await System.open(settings, init=False)
    try:
        report = await system.secrets.rotate_all()
        await system.audit.record(
            team=None,
            actor=f"cli:{getpass.getuser()}",
            source="cli",
            action="secrets.rotate",
            outcome="failure" if report.failed else "success",
            details={
                "key_version": report.key_version,
                "provider_keys": report.secrets,
                "webhooks": report.hooks,
                "did_not_open": report.failed,
            },
        )
        return report
    finally:
        await system.close()
