"""Host names and browser origins in the one normal form the request guard and the config compare."""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_PORT = re.compile(r":[0-9]{1,5}")  # ASCII digits only: str.isdigit() also accepts "²", which int() refuses
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$")


def normal_host(name: str) -> str | None:
    """A host name or IP address (no port) in the form compared against, or None when it is not one."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" in name:
        try:
            return str(ipaddress.IPv6Address(name))
        except ValueError:
            return None
    name = name.removesuffix(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        return None
    return name


def host_of(header: str) -> str | None:
    """The host of a Host header (`name`, `name:port`, `[v6]:port`), normalised; None when malformed."""
    if header.startswith("["):
        end = header.find("]")
        if end == -1:
            return None
        name, rest = header[: end + 1], header[end + 1 :]
    else:
        name, colon, port = header.partition(":")
        rest = colon + port
    if rest and not (_PORT.fullmatch(rest) and int(rest[1:]) <= 65535):
        return None
    return normal_host(name)


def normal_origin(origin: str) -> str:
    return origin.strip().lower().removesuffix("/")


def is_valid_origin(origin: str) -> bool:
    return bool(_ORIGIN.match(normal_origin(origin)))
