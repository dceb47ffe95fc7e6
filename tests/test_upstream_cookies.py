"""Upstream cookies stay with the response that set them: a provider call never replays them on later calls.

The proxy serves one user's many sessions; a `Set-Cookie` one upstream answer carries (a CDN's load
balancer, a gateway's session) must not ride along on the next request, which may be another session's.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
from aiohttp import web

from ccm_tui.config import ProviderSettings
from ccm_tui.translate.sse import encode_event
from tests.mocks.upstreams import MockServer

EVENTS = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 2},
    },
    {"type": "message_stop"},
]


class CookieSettingMock(MockServer):
    """An Anthropic-compatible upstream that sets a cookie on every streamed answer."""

    @property
    def url(self) -> str:
        return self.origin

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self._messages)]

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        await self.record(request, "cookie")
        return await self.stream(request, self._chunks(), headers={"Set-Cookie": "lb=node-7; Path=/"})

    @staticmethod
    def _chunks() -> Iterator[bytes]:
        for event in EVENTS:
            yield encode_event(event)


async def test_a_cookie_an_upstream_sets_is_not_sent_on_the_next_request(start_proxy) -> None:
    async with CookieSettingMock() as upstream:
        # By host name: aiohttp's cookie jar would keep a cookie from a named host, never from an IP address.
        proxy = await start_proxy(
            [
                ProviderSettings(
                    name="cookies",
                    kind="anthropic",
                    base_url=upstream.url.replace("127.0.0.1", "localhost"),
                    api_key_env="TEST_KEY",
                )
            ]
        )
        sdk = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="dummy", max_retries=0)
        for _ in range(2):
            async with sdk.messages.stream(
                model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                message = await stream.get_final_message()
            assert message.content[0].type == "text" and message.content[0].text == "hi"
        assert len(upstream.requests) == 2
        assert "cookie" not in upstream.requests[1].headers
