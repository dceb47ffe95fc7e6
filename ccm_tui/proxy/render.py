"""Engine outcomes and views as HTTP: status, headers and bodies (pure; app.py wraps them in Quart responses).

- render_refusal: a Refused outcome -> an Anthropic error (status, an integer `retry-after` when waiting
  helps, `x-should-retry`, the Anthropic-protocol upstream's forwarded headers).
- served_headers: the headers of a served reply (JSON or SSE): who served it (`x-ccm-provider`), after how
  many failed attempts (`x-ccm-failovers`), and the upstream's forwarded headers (request-id,
  x-should-retry, anthropic-ratelimit-*).
- health_document: the /health JSON.
- model_infos: what GET /v1/models lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ccm_tui.models import TIERS
from ccm_tui.proxy.errors import error_body
from ccm_tui.routing.outcome import Refused, Served
from ccm_tui.routing.views import EngineView

# The id a tier is listed under in GET /v1/models (clients that list models pick from these).
TIER_MODEL_IDS = {"haiku": "claude-haiku-4-5", "sonnet": "claude-sonnet-4-5", "opus": "claude-opus-4-5"}


@dataclass(frozen=True)
class Rendered:
    status: int
    headers: dict[str, str]
    body: bytes


def render_refusal(refused: Refused, request_id: str) -> Rendered:
    headers = {"content-type": "application/json", "x-should-retry": "true" if refused.should_retry else "false"}
    headers.update(refused.headers)  # an upstream's own x-should-retry (a client error passed on) wins
    if refused.retry_after is not None:
        headers["retry-after"] = str(int(refused.retry_after))
    return Rendered(
        refused.status, headers, error_body(refused.status, refused.message, request_id, refused.error_type)
    )


def served_headers(served: Served) -> dict[str, str]:
    if served.stream is None:
        headers = {"content-type": "application/json"}
    else:
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}
    headers.update(served.headers)
    if served.route is not None:  # a held stream does not know its provider yet
        headers["x-ccm-provider"] = served.route.provider
        headers["x-ccm-failovers"] = str(served.failovers)
    return headers


def health_document(view: EngineView) -> dict[str, object]:
    providers = []
    for p in view.providers:
        quota = p.quota
        providers.append(
            {
                "name": p.name,
                "kind": p.kind,
                "state": p.state.value,
                "until": p.until,
                "reason": p.reason,
                "requests": p.requests,
                "errors": p.errors,
                "latency_p50_ms": round(p.latency_p50 * 1000, 1) if p.latency_p50 is not None else None,
                "variants": [
                    {"variant": v.key, "state": v.state.value, "cooldown_until": v.cooldown_until} for v in p.variants
                ],
                "quota": None
                if quota is None
                else {
                    "requests_remaining": quota.requests.remaining if quota.requests else None,
                    "requests_limit": quota.requests.limit if quota.requests else None,
                    "tokens_remaining": quota.tokens.remaining if quota.tokens else None,
                    "tokens_limit": quota.tokens.limit if quota.tokens else None,
                },
            }
        )
    return {
        "ready": view.ready,
        "paused": view.paused,
        "strategy": view.strategy,
        "in_flight": view.in_flight,
        "providers": providers,
    }


def model_infos(view: EngineView) -> list[dict[str, Any]]:
    """One entry per model id some enabled provider serves (tiers under their Claude ids); anthropic
    providers with no models table serve every tier."""
    served: dict[str, list[str]] = {}
    for p in view.providers:
        if not p.enabled:
            continue
        keys = p.model_keys or (TIERS if p.kind == "anthropic" else ())
        for key in keys:
            model_id = TIER_MODEL_IDS.get(key, key if key != "default" else None)
            if model_id:
                served.setdefault(model_id, []).append(p.name)
    return [
        {
            "type": "model",
            "id": model_id,
            "display_name": f"{model_id} (via {', '.join(names)})",
            "created_at": "2025-01-01T00:00:00Z",
        }
        for model_id, names in served.items()
    ]
