"""Upstream request headers: the one precedence rule every adapter follows.

The adapter's defaults (content type, protocol version, credentials, a vendor's extra headers) come first; the
headers the user configured for the provider go on top, so a gateway's own auth header, an organisation id or a
pinned API version always wins. Names compare case-insensitively and leave lower-case, so an override replaces
the default instead of travelling beside it. Values may be keys: nothing here logs or formats them.
"""

from __future__ import annotations

from collections.abc import Mapping


def request_headers(defaults: Mapping[str, str], configured: Mapping[str, str]) -> dict[str, str]:
    """The headers to send: `defaults` with the provider's `configured` headers on top."""
    merged = {name.lower(): value for name, value in defaults.items()}
    merged.update((name.lower(), value) for name, value in configured.items())
    return merged


def configures(configured: Mapping[str, str], name: str) -> bool:
    """Whether the user's headers set `name` (any case): the adapter then need not find its own credential."""
    wanted = name.lower()
    return any(key.lower() == wanted for key in configured)
