"""Provider adapters, one module per kind; `providers.build` picks the adapter for a ProviderSettings.

The Provider protocol lives here, not in base.py, so routing can name it without loading any HTTP client:
importing this package loads no adapter and no HTTP client.
"""

from __future__ import annotations

from typing import Protocol

from ccm_tui.config import ProviderSettings
from ccm_tui.core.contract import ProxyRequest, Reply, Route


class Provider(Protocol):
    settings: ProviderSettings

    def set_api_key(self, key: str | None) -> None: ...

    @property
    def has_credentials(self) -> bool: ...

    async def send(self, request: ProxyRequest, route: Route) -> Reply: ...

    async def count_tokens(self, request: ProxyRequest, route: Route) -> int | None:
        """The upstream's native count, or None when it has none (the caller estimates locally)."""
        ...

    async def aclose(self) -> None: ...
