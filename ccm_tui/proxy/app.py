"""The Quart app: Anthropic Messages API routes, Anthropic-shaped errors, SSE responses.

Requests first pass the guard (proxy/guard.py: Host, Origin, Content-Type), then the proxy key (every route
but `GET /`). Reads each body once, validates its shape (proxy/validate.py), hands the request to the Engine
and writes the outcome it returns (rendered by proxy/render.py). Never lets a traceback reach a client.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Callable
from typing import cast

import orjson
from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

from ccm_tui.core.contract import ProxyRequest
from ccm_tui.core.events import RequestRejected
from ccm_tui.core.hints import hints_from_headers
from ccm_tui.models import tier_for_model
from ccm_tui.proxy.errors import error_body
from ccm_tui.proxy.guard import AsgiApp, GuardPolicy, RequestGuard
from ccm_tui.proxy.render import health_document, model_infos, render_refusal, served_headers
from ccm_tui.proxy.validate import Invalid, parse_body, shown, validate_messages_request
from ccm_tui.routing.engine import Engine
from ccm_tui.routing.outcome import Outcome, Refused

log = logging.getLogger(__name__)


def new_request_id() -> str:
    return "req_ccm" + uuid.uuid4().hex[:21]


def _json(status: int, body: bytes, request_id: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(body, status=status, content_type="application/json")
    _identify(response, request_id, headers or {})
    return response


def _identify(response: Response, request_id: str, headers: dict[str, str]) -> None:
    """The proxy's request id, unless the upstream's is forwarded (then ours is in x-ccm-request-id)."""
    response.headers["request-id"] = request_id
    for name, value in headers.items():
        response.headers[name] = value
    if response.headers["request-id"] != request_id:
        response.headers["x-ccm-request-id"] = request_id


def _error(status: int, message: str, request_id: str, error_type: str | None = None) -> Response:
    return _json(status, error_body(status, message, request_id, error_type), request_id)


def create_app(
    engine: Engine,
    *,
    proxy_key: str | None = None,
    metrics_render: Callable[[], tuple[bytes, str]] | None = None,
    max_body_bytes: int = 32 * 1024 * 1024,
    guard: GuardPolicy | None = None,
) -> Quart:
    app = Quart("ccm_tui")

    def rejected(method: str, path: str, status: int, message: str, request_id: str) -> None:
        """Requests the proxy answers itself never reach the engine: publish them so the TUI and `serve`'s log
        show them too."""
        engine.bus.publish(RequestRejected(request_id, method, path, status, message))

    def refuse(status: int, message: str, request_id: str) -> Response:
        rejected(request.method, request.path, status, message, request_id)
        return _error(status, message, request_id)

    # Quart's documented way to add ASGI middleware is to replace `asgi_app`; its hypercorn-typed scopes are
    # plain mappings to the guard.
    guarded = RequestGuard(cast(AsgiApp, app.asgi_app), guard or GuardPolicy(), new_request_id, rejected)
    app.asgi_app = guarded  # type: ignore[method-assign,assignment]
    # Streams of thinking models run for many minutes; Quart's default 60 s would cut them silently.
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 120
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def authorised() -> bool:
        if proxy_key is None:
            return True
        given = request.headers.get("x-api-key", "")
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = given or bearer[7:].strip()
        return hmac.compare_digest(given.encode(), proxy_key.encode())

    @app.before_request
    async def require_proxy_key() -> Response | None:
        if (request.path == "/" and request.method in ("GET", "HEAD")) or authorised():
            return None
        return refuse(401, "Invalid or missing API key for this ccm-tui proxy (x-api-key or Bearer).", new_request_id())

    async def read_request(require_max_tokens: bool) -> ProxyRequest | Response:
        request_id = new_request_id()
        raw = await request.get_data(cache=False)
        assert isinstance(raw, bytes)
        body = parse_body(raw)
        if isinstance(body, Invalid):
            return refuse(body.status, body.message, request_id)
        problem = validate_messages_request(body, require_max_tokens=require_max_tokens)
        if problem is not None:
            return refuse(problem.status, problem.message, request_id)
        betas = tuple(beta.strip() for beta in request.headers.get("anthropic-beta", "").split(",") if beta.strip())
        model = body["model"]
        return ProxyRequest(
            request_id=request_id,
            body=body,
            raw_body=raw,
            model=model,
            tier=tier_for_model(model),
            stream=bool(body.get("stream", False)) and require_max_tokens,
            anthropic_version=request.headers.get("anthropic-version", "2023-06-01"),
            betas=betas,
            hints=hints_from_headers(request.headers),
        )

    def to_quart(outcome: Outcome, request_id: str) -> Response:
        if isinstance(outcome, Refused):
            rendered = render_refusal(outcome, request_id)
            return _json(rendered.status, rendered.body, request_id, rendered.headers)
        if outcome.stream is None:
            return _json(200, outcome.body or b"", request_id, served_headers(outcome))
        response = Response(outcome.stream, status=200)
        _identify(response, request_id, served_headers(outcome))
        response.timeout = None
        return response

    @app.post("/v1/messages")
    async def messages() -> Response:
        parsed = await read_request(require_max_tokens=True)
        if isinstance(parsed, Response):
            return parsed
        return to_quart(await engine.handle(parsed), parsed.request_id)

    @app.post("/v1/messages/count_tokens")
    async def count_tokens() -> Response:
        parsed = await read_request(require_max_tokens=False)
        if isinstance(parsed, Response):
            return parsed
        count = await engine.count_tokens(parsed)
        return _json(200, b'{"input_tokens":%d}' % count, parsed.request_id)

    @app.get("/v1/models")
    async def list_models() -> Response:
        request_id = new_request_id()
        data = model_infos(engine.view())
        payload = {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
        return _json(200, orjson.dumps(payload), request_id)

    @app.get("/v1/models/<path:model_id>")
    async def get_model(model_id: str) -> Response:
        request_id = new_request_id()
        for info in model_infos(engine.view()):
            if info["id"] == model_id:
                return _json(200, orjson.dumps(info), request_id)
        return refuse(404, f"model: {shown(model_id)} is not served by any enabled provider.", request_id)

    @app.get("/health")
    async def health() -> Response:
        return _json(200, orjson.dumps(health_document(engine.view())), new_request_id())

    @app.get("/metrics")
    async def metrics() -> Response:
        if metrics_render is None:
            return refuse(404, "metrics are not enabled", new_request_id())
        body, content_type = metrics_render()
        return Response(body, status=200, content_type=content_type)

    @app.route("/", methods=["GET", "HEAD"])
    async def root() -> Response:
        return _json(200, b'{"service":"ccm-tui","status":"ok"}', new_request_id())

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 413:
            message = f"Request body is larger than the proxy's limit of {max_body_bytes // (1024 * 1024)} MB."
        elif status == 404:
            where = f"{shown(request.method)} {shown(request.path)}"
            message = f"Not found: {where}. ccm-tui serves /v1/messages and /v1/models."
        elif status == 405:
            message = f"Method {shown(request.method)} is not allowed on {shown(request.path)}."
        else:
            message = error.description or error.name
        if status < 500:
            return refuse(status, message, new_request_id())
        return _error(status, message, new_request_id())

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unexpected error handling %s %s", request.method, shown(request.path))
        return _error(500, f"ccm-tui internal error ({type(error).__name__}); see the ccm-tui log.", new_request_id())

    return app
