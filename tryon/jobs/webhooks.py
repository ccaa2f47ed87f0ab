"""Sign and deliver a job's final document to the webhook URL its creator gave.

* Signature: ``X-Tryon-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`` with the
  shared ``TRYON_WEBHOOK_SECRET`` (receivers check it with :func:`verify_signature`; the timestamp stops
  replays).
* Only ``http``/``https`` URLs. The host is resolved and EVERY address checked: loopback, private,
  link-local (cloud metadata 169.254.169.254), multicast, reserved and unspecified addresses are refused
  unless ``TRYON_WEBHOOK_ALLOW_PRIVATE`` is set. The request then goes to the checked address (Host header
  and TLS server name stay the URL's host), so a second DNS answer cannot redirect it (DNS rebinding), and
  redirects are not followed.
* Retries with exponential backoff and jitter on connection errors, timeouts, 429 and 5xx; other 4xx
  answers are final.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Tryon-Signature"


class WebhookRefused(ValueError):
    """The URL is not allowed (scheme, unresolvable host, private address): never retried."""


class WebhookFailed(RuntimeError):
    """Every attempt failed (or the receiver answered a final 4xx)."""


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(body: bytes, header: str, secret: str, *, tolerance_s: float = 300) -> bool:
    """What a receiver does: the header's HMAC matches and its timestamp is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    given = header.encode("utf-8", "surrogateescape")  # compare_digest refuses non-ASCII str
    return hmac.compare_digest(sign(body, secret, timestamp).encode(), given)


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def resolve_target(url: str, *, allow_private: bool) -> tuple[str, str]:
    """Check ``url`` and resolve its host; returns (the URL with the checked IP as host, original host).

    Raises :class:`WebhookRefused` naming the reason.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused(f"webhook_url: scheme {parts.scheme!r} is not allowed (http or https only)")
    if not parts.hostname:
        raise WebhookRefused("webhook_url: no host")
    if parts.username or parts.password:
        raise WebhookRefused("webhook_url: credentials in the URL are not allowed")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise WebhookRefused(f"webhook_url: cannot resolve {parts.hostname}: {error}") from error
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    if not addresses:
        raise WebhookRefused(f"webhook_url: {parts.hostname} has no address")
    if not allow_private:
        bad = [str(address) for address in addresses if _forbidden(address)]
        if bad:
            raise WebhookRefused(
                f"webhook_url: {parts.hostname} resolves to a non-public address ({', '.join(bad)})"
            )
    address = addresses[0]
    host = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))
    return pinned, parts.netloc.rsplit("@", 1)[-1]


def deliver(
    url: str,
    document: Mapping[str, Any],
    *,
    secret: str = "",
    allow_private: bool = False,
    timeout_s: float = 10.0,
    attempts: int = 5,
    backoff_s: float = 1.0,
    max_backoff_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """POST ``document`` as JSON; returns the receiver's status code (2xx). Raises on refusal / failure."""
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    hostname = urlsplit(url).hostname or ""
    last_error = ""
    for attempt in range(1, attempts + 1):
        pinned, host_header = resolve_target(url, allow_private=allow_private)  # again each try (TTLs)
        headers = {"Content-Type": "application/json", "Host": host_header, "User-Agent": "tryon-webhooks/1"}
        if secret:
            headers[SIGNATURE_HEADER] = sign(body, secret)
        try:
            with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
                reply = client.post(
                    pinned, content=body, headers=headers, extensions={"sni_hostname": hostname}
                )
            if 200 <= reply.status_code < 300:
                return reply.status_code
            last_error = f"HTTP {reply.status_code}"
            if reply.status_code != 429 and reply.status_code < 500:
                raise WebhookFailed(f"webhook {url}: receiver answered {last_error}")
        except httpx.HTTPError as error:
            last_error = f"{type(error).__name__}: {error}"
        if attempt < attempts:
            delay = min(max_backoff_s, backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            log.warning(
                "webhook %s attempt %d failed (%s); retrying in %.1fs", url, attempt, last_error, delay
            )
            sleep(delay)
    raise WebhookFailed(f"webhook {url}: {attempts} attempts failed, last: {last_error}")
