from __future__ import annotations

import logging

import pytest

from ccm_tui.core.contract import UpstreamError
from ccm_tui.core.scrub import REDACTED, Scrubber, ScrubbingFilter, remember_secret, scrub


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-abcdefghijklmnop", "abcdefghijklmnop"),
        ("invalid x-api-key sk-ant-api03-AAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAA"),
        ("Authorization: Bearer abc.def.ghijklmnop", "ghijklmnop"),
        ("key=AIzaSyA1234567890abcdefg", "1234567890abcdefg"),
        ("token ghp_abcdefghijklmnopqrstu", "abcdefghijklmnopqrstu"),
    ],
)
def test_key_shaped_strings_are_redacted(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned and REDACTED in cleaned


def test_exact_known_values_are_redacted_even_when_not_key_shaped() -> None:
    scrubber = Scrubber()
    scrubber.remember("hunter2-but-longer")
    scrubber.remember("short")  # too short to scrub without eating ordinary words
    assert scrubber.scrub("bad key hunter2-but-longer, short") == f"bad key {REDACTED}, short"


def test_upstream_errors_are_scrubbed_at_construction() -> None:
    remember_secret("my-distinctive-provider-key-0042")
    error = UpstreamError(401, "invalid key: my-distinctive-provider-key-0042")
    assert "my-distinctive-provider-key-0042" not in error.message
    assert "my-distinctive-provider-key-0042" not in str(error)


def test_log_records_leave_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    remember_secret("another-distinctive-key-7731")
    logger = logging.getLogger("ccm_tui.test_scrub")
    caplog.handler.addFilter(ScrubbingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("upstream said %s", "bad key another-distinctive-key-7731")
    assert "another-distinctive-key-7731" not in caplog.text
    assert REDACTED in caplog.text


def test_upstream_error_types_and_codes_are_scrubbed_and_bounded() -> None:
    remember_secret("gateway-key-in-a-code-991")
    error = UpstreamError(401, "Unauthorized", error_type="x" * 500, error_code="gateway-key-in-a-code-991")
    assert error.error_code == REDACTED
    assert error.error_type is not None and len(error.error_type) <= 64


def test_configured_header_values_are_scrubbed_once_a_runtime_is_built(tmp_path) -> None:
    from ccm_tui.config import ProviderSettings, Settings
    from ccm_tui.runtime import Runtime

    provider = ProviderSettings(
        name="gw", kind="anthropic", base_url="http://127.0.0.1:9", headers={"x-gateway-auth": "gw-secret-value-5521"}
    )
    Runtime(Settings(providers=(provider,), history_enabled=False), environ={})
    assert scrub("upstream said: bad gw-secret-value-5521") == f"upstream said: bad {REDACTED}"
