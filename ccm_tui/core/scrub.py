"""One secret scrubber for every string that leaves the process: error bodies, logs, history, the screen.

Two nets: the exact values of every key this process knows (registered as keys are loaded or typed in), and
key-shaped patterns for keys it does not know (an upstream echoing some other credential).
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "[redacted]"

_KEY_SHAPED = re.compile(
    r"\b(?:sk-ant-|sk-or-|sk-proj-|sk-|gsk_|csk-|xai-|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|AIza|AKIA|ASIA|ya29\.)"
    r"[A-Za-z0-9_\-.*]{6,}"
    r"|(?i:bearer)\s+[A-Za-z0-9_\-.=]{8,}"
    r"|[A-Za-z0-9_\-]{40,}"
)
_MIN_SECRET_LENGTH = 8  # shorter values would redact ordinary words


class Scrubber:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._exact: re.Pattern[str] | None = None

    def remember(self, secret: str | None) -> None:
        """Scrub this exact value from now on (API keys, proxy keys, cloud secrets)."""
        if not secret or len(secret) < _MIN_SECRET_LENGTH or secret in self._values:
            return
        with self._lock:
            self._values = self._values | {secret}
            ordered = sorted(self._values, key=len, reverse=True)  # longest first: no partial leftovers
            self._exact = re.compile("|".join(re.escape(value) for value in ordered))

    def scrub(self, text: str) -> str:
        exact = self._exact
        if exact is not None:
            text = exact.sub(REDACTED, text)
        return _KEY_SHAPED.sub(REDACTED, text)


SCRUBBER = Scrubber()


def scrub(text: str) -> str:
    """`text` without any known secret or anything shaped like one."""
    return SCRUBBER.scrub(text)


def remember_secret(secret: str | None) -> None:
    SCRUBBER.remember(secret)


class ScrubbingFilter(logging.Filter):
    """Attach to every log handler: the formatted message (and any traceback text) leaves scrubbed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True
