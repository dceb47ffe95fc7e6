"""An upstream that sends one enormous SSE event fails fast, as a classified upstream failure, not a hang."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
from aiohttp import web

from ccm_tui.config import ProviderSettings, RoutingSettings, Variant
from ccm_tui.proxy.render import health_document
from tests.mocks.upstreams import AnthropicMock, MockServer, OpenAIMock

HUGE_LINE_BYTES = 20 * 1024 * 1024


class EndlessLineMock(MockServer):
    """An OpenAI-compatible upstream whose stream is one 20 MB `data:` line (a broken or hostile gateway)."""

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self._completions)]

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        await self.record(request, "endless_line")
        return await self.stream(request, self._chunks())

    @staticmethod
    def _chunks() -> Iterator[bytes]:
        yield b'data: {"choices":[{"index":0,"delta":{"content":"'
        piece = b"a" * 65536
        for _ in range(HUGE_LINE_BYTES // len(piece)):
            yield piece


class EndlessAnthropicEventMock(MockServer):
    """An Anthropic-compatible upstream whose stream is one 20 MB event that never ends (no blank line)."""

    @property
    def url(self) -> str:
        return self.origin

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self._messages)]

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        await self.record(request, "endless_event")
        return await self.stream(request, self._chunks())

    @staticmethod
    def _chunks() -> Iterator[bytes]:
        yield b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"'
        piece = b"a" * 65536
        for _ in range(HUGE_LINE_BYTES // len(piece)):
            yield piece


def anthropic_provider(name: str, url: str) -> ProviderSettings:
    return ProviderSettings(name=name, kind="anthropic", base_url=url, api_key_env="TEST_KEY")


def openai_provider(name: str, url: str) -> ProviderSettings:
    return ProviderSettings(
        name=name, kind="openai", base_url=url, api_key_env="TEST_KEY", models={"default": (Variant("mock-large"),)}
    )


async def test_an_oversized_upstream_event_fails_over_to_the_next_provider(start_proxy) -> None:
    async with EndlessLineMock() as broken, OpenAIMock() as healthy:
        proxy = await start_proxy(
            [openai_provider("broken", broken.url), openai_provider("healthy", healthy.url)],
            routing=RoutingSettings(strategy="ordered"),
        )
        sdk = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="dummy", max_retries=0)
        async with sdk.messages.stream(
            model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            message = await stream.get_final_message()
        assert message.content and message.content[0].type == "text"
        assert len(broken.requests) == 1 and len(healthy.requests) == 1
        [record] = await proxy.wait_finished(1)
        report = health_document(proxy.engine.view())
        broken_state = next(p for p in report["providers"] if p["name"] == "broken")
        assert broken_state["state"] != "ok"
        assert "larger than" in (broken_state["reason"] or "")
        assert record.provider == "healthy"


async def test_an_oversized_pass_through_event_fails_over_as_too_large(start_proxy) -> None:
    """The pass-through holds an unfinished event until its end arrives: bounded like the SSE parser's."""
    async with EndlessAnthropicEventMock() as broken, AnthropicMock() as healthy:
        proxy = await start_proxy(
            [anthropic_provider("broken", broken.url), anthropic_provider("healthy", healthy.url)],
            routing=RoutingSettings(strategy="ordered"),
        )
        sdk = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="dummy", max_retries=0)
        async with sdk.messages.stream(
            model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            message = await stream.get_final_message()
        assert message.content and message.content[0].type == "text"
        [record] = await proxy.wait_finished(1)
        broken_state = next(p for p in health_document(proxy.engine.view())["providers"] if p["name"] == "broken")
        assert "larger than" in (broken_state["reason"] or "")
        assert record.provider == "healthy"
