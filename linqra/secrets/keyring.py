"""The master keyring: versioned AES-256-GCM keys that seal secrets at rest.

Where the keys come from
    ``LINQRA_MASTER_KEYS`` in each process's environment: comma- (or newline-) separated
    ``VERSION:KEY`` entries, ``VERSION`` a positive integer and ``KEY`` 32 random bytes in
    base64 (standard or URL-safe alphabet), **newest first** (lines starting with ``#`` are
    comments)::

        LINQRA_MASTER_KEYS="2:8sQ0…=,1:Jx3r…="

    The first entry seals everything sealed from now on and must carry the highest version; the
    others only open what they sealed before (until ``linqra secrets rotate`` has re-sealed it).
    A new key is ``openssl rand -base64 32``. The variable is read here, where it is used, and
    deliberately not a :class:`~linqra.config.Settings` field: the settings are shipped to Ray
    workers as plain init arguments, and master keys must not travel that way.

    Embedded profile only, and only when the variable is unset: the keys are read from
    ``<data_dir>/master.key`` (the same format), which is created on first use with one fresh
    key, mode 0600. The production profile refuses to start without the variable.

What a sealed value is
    ``{"v": key version, "nonce": base64 12 bytes, "ct": base64 ciphertext + 16-byte tag}``.
    The associated data the caller gives (:func:`associated_data`: the team and the row's name,
    such as ``provider:openai`` or ``hook:hk_…``) is authenticated together with the key version,
    so a ciphertext copied into another team's row, another row of the same team, or relabelled
    with another version does not open. ``cryptography``'s AES-GCM is used as it is; Fernet was
    not, because it has no associated data.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from linqra.config import Settings
from linqra.errors import LinqraError

__all__ = [
    "ENV_VAR",
    "KEY_FILE",
    "Keyring",
    "KeyringError",
    "SealError",
    "Sealed",
    "associated_data",
    "load_keyring",
    "new_key_entry",
    "secret_file",
]

log = logging.getLogger(__name__)

ENV_VAR = "LINQRA_MASTER_KEYS"
KEY_FILE = "master.key"
KEY_BYTES = 32
NONCE_BYTES = 12
Sealed = dict[str, Any]
"""``{"v": int, "nonce": str, "ct": str}``: what the store keeps instead of a secret."""

_ENTRY = re.compile(r"^([0-9]{1,9}):([A-Za-z0-9+/_=-]+)$")
# the key files this process already said it uses: the notice is worth one line, not one per
# System (tests and drivers open many); a set of paths holds no secret
_announced: set[Path] = set()


class KeyringError(LinqraError):
    """The master keys are missing or malformed: a deployment error, reported at start-up.
    The message says what is wrong and never quotes key material."""

    code = "keyring_misconfigured"


class SealError(LinqraError):
    """A sealed value does not open: tampered, copied from another row, or sealed with a key
    version the keyring no longer holds."""

    code = "secret_unreadable"


def associated_data(team_id: str, name: str) -> bytes:
    """The row a secret belongs to, as the associated data of its ciphertext (without the key
    version, which :meth:`Keyring.seal` adds). JSON, so no two rows encode alike."""
    if not team_id or not name:
        raise ValueError("a sealed value belongs to a team and a name")
    return json.dumps([team_id, name], separators=(",", ":")).encode()


def new_key_entry(version: int) -> str:
    """A fresh ``VERSION:KEY`` entry (32 random bytes) for ``LINQRA_MASTER_KEYS``."""
    return f"{version}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


class Keyring:
    """Versioned AES-256-GCM keys; the first (highest version) seals, every one opens."""

    __slots__ = ("_ciphers", "source", "version")

    def __init__(self, keys: Sequence[tuple[int, bytes]], *, source: str = "keys") -> None:
        if not keys:
            raise KeyringError(f"the master keyring ({source}) holds no key")
        ciphers: dict[int, AESGCM] = {}
        for version, key in keys:
            if version < 1:
                raise KeyringError(f"{source}: key versions are positive integers, not {version}")
            if version in ciphers:
                raise KeyringError(f"{source}: key version {version} appears twice")
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"{source}: key version {version} is {len(key)} bytes, not {KEY_BYTES}"
                )
            ciphers[version] = AESGCM(key)
        newest = keys[0][0]
        if newest != max(ciphers):
            raise KeyringError(
                f"{source}: the first key seals new values and must have the highest version "
                f"(first is {newest}, highest is {max(ciphers)}); list the keys newest first"
            )
        self._ciphers = ciphers
        self.version = newest
        self.source = source

    @classmethod
    def parse(cls, text: str, *, source: str = ENV_VAR) -> Keyring:
        """A keyring from ``VERSION:BASE64KEY`` entries, newest first (see the module doc)."""
        keys: list[tuple[int, bytes]] = []
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
        for n, raw in enumerate(",".join(lines).split(","), start=1):
            entry = raw.strip()
            if not entry:
                continue
            match = _ENTRY.fullmatch(entry)
            if match is None:
                raise KeyringError(
                    f"{source}: entry {n} is not VERSION:BASE64KEY (e.g. 2:<openssl rand -base64 "
                    "32>)"
                )
            keys.append((int(match.group(1)), _decode_key(match.group(2), source, n)))
        return cls(keys, source=source)

    @property
    def versions(self) -> list[int]:
        """The key versions held, newest first."""
        return sorted(self._ciphers, reverse=True)

    def seal(self, plaintext: str, aad: bytes) -> Sealed:
        """``plaintext`` sealed with the newest key; ``aad`` names its row
        (:func:`associated_data`)."""
        nonce = os.urandom(NONCE_BYTES)
        ct = self._ciphers[self.version].encrypt(
            nonce, plaintext.encode(), _bound(aad, self.version)
        )
        return {"v": self.version, "nonce": _b64(nonce), "ct": _b64(ct)}

    def open(self, sealed: Mapping[str, Any], aad: bytes) -> str:
        """The plaintext of ``sealed``, which must have been sealed for the row ``aad`` names;
        :class:`SealError` otherwise (the message never holds key or plaintext)."""
        try:
            version = sealed["v"]
            nonce = base64.b64decode(sealed["nonce"], validate=True)
            ct = base64.b64decode(sealed["ct"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise SealError("a sealed value is malformed") from None
        cipher = self._ciphers.get(version) if isinstance(version, int) else None
        if cipher is None:
            raise SealError(
                f"a value is sealed with master key version {version!r}, which the keyring "
                f"({self.source}: versions {self.versions}) does not hold"
            )
        try:
            return cipher.decrypt(nonce, ct, _bound(aad, version)).decode()
        except (InvalidTag, ValueError):
            raise SealError(
                "a sealed value does not open: it was changed, or copied from another row"
            ) from None

    def is_current(self, sealed: Mapping[str, Any] | None) -> bool:
        """Whether ``sealed`` is already sealed with the newest key."""
        return bool(sealed) and sealed.get("v") == self.version  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"Keyring(versions={self.versions}, source={self.source!r})"

    def __reduce__(self) -> NoReturn:
        # each process loads its keyring from its own environment; keys never travel pickled
        raise TypeError("a Keyring is not pickled: every process loads it with load_keyring()")


def load_keyring(settings: Settings, environ: Mapping[str, str] | None = None) -> Keyring:
    """The process's keyring: ``LINQRA_MASTER_KEYS``, else (embedded profile only) the key file
    in ``settings.data_dir``, created with one fresh key when missing."""
    env = os.environ if environ is None else environ
    text = env.get(ENV_VAR, "")
    if text.strip():
        return Keyring.parse(text, source=ENV_VAR)
    if settings.profile != "embedded":
        raise KeyringError(
            f"the {settings.profile} profile needs the master keys in {ENV_VAR} "
            f"(e.g. {ENV_VAR}=1:$(openssl rand -base64 32)); see docs/security.md"
        )
    path = (settings.data_dir / KEY_FILE).resolve()
    existed = path.exists()
    keyring = Keyring.parse(_read_or_create(path), source=str(path))
    if path not in _announced:  # said once, by the process that made the file (each of a
        _announced.add(path)  # cluster's processes loads it; `linqra up` says it in its banner)
        log.log(
            logging.DEBUG if existed else logging.INFO,
            "secrets are sealed with the embedded master key file %s (set %s in production)",
            path,
            ENV_VAR,
        )
    return keyring


def _read_or_create(path: Path) -> str:
    """The key file's text; a missing file is created with one key (see secret_file)."""
    return secret_file(
        path,
        lambda: (
            "# Linqra's embedded master keys, newest first (docs/security.md)\n"
            f"{new_key_entry(1)}\n"
        ),
    )


def secret_file(path: Path, make: Callable[[], str]) -> str:
    """The text of an embedded secret file; a missing one is created with ``make()``, mode 0600,
    atomically (a temporary file hard-linked into place), so processes starting at the same
    time all end up with the same secret."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(make())
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning("secret file %s is readable by others (mode %o): chmod 600", path, mode)
    return path.read_text()


def _decode_key(text: str, source: str, n: int) -> bytes:
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{source}: the key of entry {n} is not base64") from None


def _bound(aad: bytes, version: int) -> bytes:
    return aad + b"|v" + str(version).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
