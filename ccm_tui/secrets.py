"""API keys: environment variable first, then the OS keyring; stored only through keyring.

Keyring calls can block (D-Bus, a locked keychain), so every call runs in a thread. Lookups tolerate a
missing or broken backend; storing raises KeyringUnavailable with a message the user can act on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

import keyring
import keyring.errors

from ccm_tui.config import ProviderSettings
from ccm_tui.core.scrub import remember_secret

log = logging.getLogger(__name__)

SERVICE = "ccm-tui"


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


async def resolve_key(provider: ProviderSettings, environ: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """The provider's key and where it came from ("env", "keyring" or "none")."""
    key = env_key(provider, environ)
    if key:
        return key, "env"
    key = await asyncio.to_thread(_keyring_get, provider.name)
    remember_secret(key)
    return (key, "keyring") if key else (None, "none")


def _keyring_set(provider: ProviderSettings, key: str) -> None:
    if not _backend_usable():
        raise KeyringUnavailable(_no_backend_message(provider))
    try:
        keyring.set_password(SERVICE, provider.name, key)
    except keyring.errors.NoKeyringError:
        raise KeyringUnavailable(_no_backend_message(provider)) from None
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"The keyring refused to store the key: {type(exc).__name__}.") from None


async def store_key(provider: ProviderSettings, key: str) -> None:
    await asyncio.to_thread(_keyring_set, provider, key)


def _keyring_delete(name: str) -> None:
    try:
        keyring.delete_password(SERVICE, name)
    except keyring.errors.PasswordDeleteError:
        pass
    except Exception as exc:
        raise KeyringUnavailable(f"The keyring refused to delete the key: {type(exc).__name__}.") from None


async def delete_key(provider: ProviderSettings) -> None:
    await asyncio.to_thread(_keyring_delete, provider.name)
