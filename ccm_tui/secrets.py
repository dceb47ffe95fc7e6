"""API keys: environment variables first, then the OS keyring; stored only through keyring.

A provider may hold a pool of keys: every set variable of `api_key_env` (one name or a list), then every keyring
entry ccm-tui stored for it (slot 1 is the entry named after the provider, slot n the entry `<name>#n`, up to
MAX_KEYRING_KEYS). Keyring calls can block (D-Bus, a locked keychain), so every call runs in a thread. Lookups
tolerate a missing or broken backend; storing raises KeyringUnavailable with a message the user can act on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import keyring
import keyring.errors

from ccm_tui.config import ProviderSettings
from ccm_tui.core.scrub import remember_secret
from ccm_tui.routing.keys import key_label

log = logging.getLogger(__name__)

SERVICE = "ccm-tui"
MAX_KEYRING_KEYS = 8


@dataclass(frozen=True)
class ResolvedKey:
    label: str  # never the key: the variable or keyring slot, and the last characters of a long key
    source: str  # "env" or "keyring"
    secret: str = field(repr=False)


class KeyringUnavailable(Exception):
    """No usable keyring backend on this machine; the message explains the alternatives."""


def _no_backend_message(provider: ProviderSettings) -> str:
    env = provider.api_key_env or f"{provider.name.upper().replace('-', '_')}_API_KEY"
    return (
        "No keyring backend is available on this machine, so the key cannot be stored securely. "
        f'Either set the environment variable {env} (and `api_key_env = "{env}"` in the config) before '
        "starting ccm-tui, or install a keyring backend, e.g. `pip install keyrings.alt` for a file-based one."
    )


def _backend_usable() -> bool:
    # keyring's fail backend (and an empty chainer) has priority 0: nothing would be stored.
    return getattr(keyring.get_keyring(), "priority", 0) > 0


def env_key(provider: ProviderSettings, environ: Mapping[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    if provider.api_key_env and environ.get(provider.api_key_env):
        key = environ[provider.api_key_env]
        remember_secret(key)
        return key
    return None


def _keyring_get(name: str) -> str | None:
    try:
        return keyring.get_password(SERVICE, name)
    except Exception as exc:  # any backend failure means "no stored key", never a crash
        log.debug("keyring lookup for %s failed: %s", name, type(exc).__name__)
        return None


def keyring_entry(provider: ProviderSettings, slot: int = 1) -> str:
    """The keyring user name of a provider's key slot (slot 1 keeps the name single-key versions used)."""
    return provider.name if slot == 1 else f"{provider.name}#{slot}"


def _keyring_slots(provider: ProviderSettings) -> list[tuple[int, str]]:
    found = []
    for slot in range(1, MAX_KEYRING_KEYS + 1):
        key = _keyring_get(keyring_entry(provider, slot))
        if key:
            found.append((slot, key))
    return found


async def resolve_keys(provider: ProviderSettings, environ: Mapping[str, str] | None = None) -> list[ResolvedKey]:
    """The provider's key pool, in rotation order: set environment variables, then keyring entries."""
    environ = os.environ if environ is None else environ
    keys: list[ResolvedKey] = []
    for name in provider.key_envs:
        if environ.get(name):
            remember_secret(environ[name])
            keys.append(ResolvedKey(key_label(name, environ[name]), "env", environ[name]))
    stored = await asyncio.to_thread(_keyring_slots, provider)
    for slot, key in stored:
        remember_secret(key)
        if all(k.secret != key for k in keys):
            keys.append(ResolvedKey(key_label(f"keyring #{slot}", key), "keyring", key))
    return keys


def _free_slot(provider: ProviderSettings) -> int:
    used = {slot for slot, _ in _keyring_slots(provider)}
    free = [slot for slot in range(1, MAX_KEYRING_KEYS + 1) if slot not in used]
    if not free:
        raise KeyringUnavailable(f"{provider.name} already has {MAX_KEYRING_KEYS} keys in the keyring.")
    return free[0]


def _keyring_set(provider: ProviderSettings, key: str, slot: int | None = 1) -> int:
    """Store `key` in `slot` (None: the first free slot); returns the slot."""
    if not _backend_usable():
        raise KeyringUnavailable(_no_backend_message(provider))
    try:
        slot = _free_slot(provider) if slot is None else slot
        keyring.set_password(SERVICE, keyring_entry(provider, slot), key)
    except keyring.errors.NoKeyringError:
        raise KeyringUnavailable(_no_backend_message(provider)) from None
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"The keyring refused to store the key: {type(exc).__name__}.") from None
    return slot


async def store_key(provider: ProviderSettings, key: str) -> None:
    """Store the provider's (first) key."""
    await asyncio.to_thread(_keyring_set, provider, key)


async def add_key(provider: ProviderSettings, key: str) -> ResolvedKey:
    """Store one more key for the provider's pool, in the first free keyring slot."""
    remember_secret(key)
    slot = await asyncio.to_thread(_keyring_set, provider, key, None)
    return ResolvedKey(key_label(f"keyring #{slot}", key), "keyring", key)


def _keyring_delete(name: str) -> None:
    try:
        keyring.delete_password(SERVICE, name)
    except keyring.errors.PasswordDeleteError:
        pass
    except Exception as exc:
        raise KeyringUnavailable(f"The keyring refused to delete the key: {type(exc).__name__}.") from None


async def delete_key(provider: ProviderSettings, slot: int = 1) -> None:
    await asyncio.to_thread(_keyring_delete, keyring_entry(provider, slot))
