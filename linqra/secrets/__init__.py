"""Secrets at rest: the master keyring that seals them and each team's provider keys."""

from __future__ import annotations

from linqra.secrets.keyring import (
    Keyring,
    KeyringError,
    Sealed,
    SealError,
    associated_data,
    load_keyring,
)
from linqra.secrets.models import RotationReport, SecretInput, SecretView
from linqra.secrets.sealed import SealedField, reseal
from linqra.secrets.service import TeamSecrets

__all__ = [
    "Keyring",
    "KeyringError",
    "RotationReport",
    "SealError",
    "Sealed",
    "SealedField",
    "SecretInput",
    "SecretView",
    "TeamSecrets",
    "associated_data",
    "load_keyring",
    "reseal",
]
