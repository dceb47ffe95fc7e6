"""Google plumbing shared by the Vertex and Gemini adapters: an OAuth token source and Google error shapes.

`GoogleTokenSource` loads credentials (a credentials file, else Application Default Credentials) and
refreshes them in a worker thread (google-auth is blocking), caching the access token until shortly before
it expires; concurrent requests wait for one refresh. `google_error` turns a Google error body (an object or,
from some Vertex endpoints, a one-element array) into an UpstreamError the routing layer can classify.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from datetime import UTC
from typing import Any

import google.auth
import google.auth.exceptions
import orjson
import urllib3
from google.auth import identity_pool
from google.auth.credentials import Credentials
from google.auth.transport.urllib3 import Request as Urllib3Request
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from ccm_tui.core.contract import UpstreamError
from ccm_tui.core.durations import parse_protobuf_duration
from ccm_tui.core.states import TransportFailure
from ccm_tui.translate.openai_errors import plain_error_text

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_REFRESH_MARGIN = 300.0  # renew this many seconds before the token expires
_TOKEN_HTTP_TIMEOUT = urllib3.Timeout(connect=10.0, read=30.0)
# Errors that no retry fixes: the routing layer disables the provider on 401/403.
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})


class GoogleTokenSource:
    """OAuth access tokens for Google Cloud APIs, fetched off the event loop and cached until near expiry."""

    def __init__(self, credentials_file: str | None = None, scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)) -> None:
        self._credentials_file = credentials_file
        self._scopes = list(scopes)
        self._credentials: Credentials | None = None
        self._http: urllib3.PoolManager | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.missing = False  # loading credentials failed: nothing to authenticate with
        self.refreshes = 0

    async def token(self) -> str:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    self._token, self._expires_at = await asyncio.to_thread(self._refresh)
                    self.refreshes += 1
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the upstream said it is not valid any more)."""
        self._token = None

    def _fresh(self) -> bool:
        return self._token is not None and time.time() < self._expires_at - _REFRESH_MARGIN

    def _refresh(self) -> tuple[str, float]:
        try:
            if self._credentials is None:
                self._credentials = self._load()
            if self._http is None:
                self._http = urllib3.PoolManager(timeout=_TOKEN_HTTP_TIMEOUT)
            self._credentials.refresh(Urllib3Request(self._http))
        except google.auth.exceptions.DefaultCredentialsError as exc:
            self.missing = True
            raise UpstreamError(401, f"no Google credentials: {_short(exc)}", error_type="UNAUTHENTICATED") from None
        except google.auth.exceptions.RefreshError as exc:
            raise UpstreamError(
                401, f"Google token refresh failed: {_short(exc)}", error_type="UNAUTHENTICATED"
            ) from None
        except google.auth.exceptions.TransportError:
            raise UpstreamError.no_response(TransportFailure.CONNECT, "Google token endpoint unreachable") from None
        token = self._credentials.token
        if not token:
            raise UpstreamError(401, "Google token refresh returned no token", error_type="UNAUTHENTICATED")
        expiry = self._credentials.expiry  # naive UTC datetime, or None when unknown
        expires_at = expiry.replace(tzinfo=UTC).timestamp() if expiry is not None else time.time() + 3000.0
        return token, expires_at

    def _load(self) -> Credentials:
        if not self._credentials_file:
            credentials, _ = google.auth.default(scopes=self._scopes)
            return credentials
        try:
            with open(self._credentials_file, encoding="utf-8") as handle:
                info = json.load(handle)
        except (OSError, ValueError) as exc:
            raise google.auth.exceptions.DefaultCredentialsError(
                f"cannot read {self._credentials_file}: {exc}"
            ) from None
        # Type-specific loaders: the generic one is deprecated for files of unknown origin.
        kind = info.get("type") if isinstance(info, dict) else None
        if kind == "service_account":
            return service_account.Credentials.from_service_account_info(info, scopes=self._scopes)
        if kind == "authorized_user":
            return user_credentials.Credentials.from_authorized_user_info(info, scopes=self._scopes)
        if kind == "external_account":
            return identity_pool.Credentials.from_info(info, scopes=self._scopes)
        raise google.auth.exceptions.DefaultCredentialsError(f"unsupported credentials type {kind!r}")


def _short(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text[:200]


def google_error(status: int, body: bytes | Any, headers: Mapping[str, str] | None = None) -> UpstreamError:
    """A Google-shaped error as UpstreamError.

    error_type is the canonical status (RESOURCE_EXHAUSTED, PERMISSION_DENIED, ...), error_code the
    ErrorInfo reason when there is one; RetryInfo.retryDelay becomes retry_after and a per-day quota
    (a quotaId containing "PerDay") sets long_quota. Invalid API keys (400 INVALID_ARGUMENT with reason
    API_KEY_INVALID) become 401 UNAUTHENTICATED and FAILED_PRECONDITION (project or location not allowed to
    use the model) becomes 403: both disable the provider instead of passing for a bad request.
    """
    payload = body
    if isinstance(body, bytes | bytearray):
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    header_map = dict(headers or {})
    if not isinstance(error, dict):
        # Google's front end answers some failures (413 above all) with an HTML page, not a JSON error.
        raw = bytes(body[:20000]).decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else ""
        text = plain_error_text(raw)
        if status == 413:
            text = f"request too large for this provider ({text})" if text else "request too large for this provider"
        return UpstreamError(status, f"HTTP {status}: {text}".strip(), headers=header_map)
    error_type = error.get("status") if isinstance(error.get("status"), str) else None
    message = str(error.get("message") or f"HTTP {status}")
    retry_after: float | None = None
    long_quota = False
    reason: str | None = None
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.RetryInfo"):
            retry_after = parse_protobuf_duration(detail.get("retryDelay"))
        elif kind.endswith("google.rpc.QuotaFailure"):
            quota_ids = [str(v.get("quotaId", "")) for v in detail.get("violations") or [] if isinstance(v, dict)]
            long_quota = long_quota or any("PerDay" in quota_id for quota_id in quota_ids)
        elif kind.endswith("google.rpc.ErrorInfo") and isinstance(detail.get("reason"), str):
            reason = detail["reason"]
    if reason in _AUTH_REASONS:
        status, error_type = 401, "UNAUTHENTICATED"
    elif error_type == "FAILED_PRECONDITION":
        status = 403
    return UpstreamError(
        status,
        f"{error_type or 'HTTP ' + str(status)}: {message}",
        error_type=error_type,
        error_code=reason,
        headers=header_map,
        retry_after=retry_after,
        long_quota=long_quota,
    )
