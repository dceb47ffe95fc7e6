"""`build_provider`: the adapter for a ProviderSettings, imported only when that kind is configured."""

from __future__ import annotations

from ccm_tui.config import ProviderSettings, RoutingSettings
from ccm_tui.providers import Provider


def build_provider(settings: ProviderSettings, routing: RoutingSettings) -> Provider:
    # Imported lazily so a kind's dependencies (botocore, google-auth) load only when it is configured.
    if settings.kind == "anthropic":
        from ccm_tui.providers.anthropic import AnthropicProvider

        return AnthropicProvider(settings, routing)
    if settings.kind == "openai":
        from ccm_tui.providers.openai import OpenAIProvider

        return OpenAIProvider(settings, routing)
    if settings.kind == "bedrock":
        from ccm_tui.providers.bedrock import BedrockProvider

        return BedrockProvider(settings, routing)
    if settings.kind == "vertex":
        from ccm_tui.providers.vertex import VertexProvider

        return VertexProvider(settings, routing)
    if settings.kind == "gemini":
        from ccm_tui.providers.gemini import GeminiProvider

        return GeminiProvider(settings, routing)
    raise ValueError(f"unknown provider kind {settings.kind!r}")
