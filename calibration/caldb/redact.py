"""Keep CALDB credentials out of logs and errors, and off plain-text connections.

A remote CALDB URL may carry credentials (``https://user:TOKEN@host/caldb``, or a signed
URL's ``?token=...``). Every URL that reaches a log line, an error message or a ``repr``
goes through :func:`redact` first. Credentials (a bearer token, a URL password) are only
sent over https, or over plain http to this machine (loopback: a local mirror, tests):
:func:`check_transport` refuses anything else with a message that says why.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "RedactingFilter",
    "check_transport",
    "install_log_filter",
    "is_loopback",
    "redact",
    "redact_url",
    "split_credentials",
    "url_secrets",
]

MASK = "***"
# query parameters that hold credentials in signed or token URLs
_SECRET_PARAM = re.compile(r"token|key|pass|secret|sig|auth|credential", re.IGNORECASE)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """Return ``url`` with its user information and credential-like query values masked."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK  # not parseable: show nothing rather than a secret
    netloc = parts.netloc
    if "@" in netloc:
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{MASK}@{host}" + (f":{port}" if port else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_PARAM.search(k) else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str) -> list[str]:
    """Return the credentials written in ``url`` (user, password, secret query values)."""
    try:
        parts = urlsplit(url)
        found = [parts.username, parts.password]
    except ValueError:
        return []
    found += [v for k, v in parse_qsl(parts.query) if _SECRET_PARAM.search(k)]
    out = []
    for s in found:
        if s:
            out += [s, unquote(s)]
    return sorted(set(out), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Mask every URL's credentials in ``text``, then every one of ``secrets``."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    for s in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(s, MASK)
    return text


def is_loopback(host: str | None) -> bool:
    """Tell whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_transport(url: str, what: str) -> str | None:
    """Return why ``what`` (credentials) must not be sent to ``url``, or None if it may.

    Credentials go over https, or over plain http to loopback only.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return None
    return (
        f"refusing to send {what} over plain {parts.scheme} to {parts.hostname or '?'}: "
        "use an https:// CALDB URL (plain http is allowed only to this machine)"
    )


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """Return ``url`` without its user information, and the (user, password) it held."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    auth = (unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), auth


class RedactingFilter(logging.Filter):
    """Mask URL credentials in the records of a logger (httpx logs every request's URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with its URLs redacted; keep the record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: left alone
            return True
        if "://" in message:
            record.msg, record.args = redact(message), ()
        return True


def install_log_filter(names: Iterable[str] = ("httpx", "httpcore")) -> None:
    """Add a :class:`RedactingFilter` to these loggers (once)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
