"""The client's address behind reverse proxies: X-Forwarded-For is believed only from a configured trusted proxy.

From any other peer the header is the client's own words and is ignored. Behind trusted proxies the chain is read
right to left (each proxy appends the address it saw) and the first address that is not itself a trusted proxy is
the client; entries a client wrote at the left end are never reached while a trusted proxy appended after them.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    v = value.strip().strip('"')
    if v.startswith("[") and "]" in v:      # [v6]:port
        v = v[1:v.index("]")]
    elif v.count(":") == 1:                 # v4:port
        v = v.split(":", 1)[0]
    try:
        return ipaddress.ip_address(v)
    except ValueError:
        return None


def resolve(peer: str, forwarded_for: Iterable[str], trusted: Iterable[str]) -> str:
    nets = _networks(tuple(trusted))
    peer_ip = _parse(peer)
    if peer_ip is None or not any(peer_ip in n for n in nets):
        return peer
    hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _parse(hop)
        if ip is None:
            return peer  # a garbled chain: fall back to the proxy itself rather than trust a fragment
        if not any(ip in n for n in nets):
            return str(ip)
    return str(_parse(hops[0])) if hops else peer


def client_address(conn: HTTPConnection, trusted: Iterable[str]) -> str:
    peer = conn.client.host if conn.client else "unknown"
    return resolve(peer, conn.headers.getlist("x-forwarded-for"), trusted)
