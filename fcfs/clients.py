"""Who a request comes from: its peer's address, or behind a proxy listed in `TRUSTED_PROXIES` the address
that proxy saw.

`X-Forwarded-For` is read from the right, skipping trusted proxies, every header of it joined in order (as
HTTP says several headers of one name are); the header of an untrusted peer is ignored, so it cannot be
used to spoof. A hop's port is dropped (`1.2.3.4:5678`, `[2001:db8::1]:443`), so one client is one
address whatever connection it came by; a hop that is no address stops the reading at the proxy that
wrote it. The door, the synchronous path, the limits, the body deadline and the dashboard's sign-in all read clients
here."""

from __future__ import annotations

import ipaddress


class ClientAddresses:
    def __init__(self, trusted_proxies: str = "") -> None:
        self.trusted = [ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies.split(",") if p.strip()]

    def of(self, peer: str, forwarded_for: bytes | str | None) -> str:
        """The client's address: the peer's, or behind trusted proxies the first untrusted one they name."""
        if not self.trusted or not forwarded_for or not self._is_trusted(peer):
            return peer
        if isinstance(forwarded_for, bytes):
            forwarded_for = forwarded_for.decode("latin-1")
        for hop in reversed(forwarded_for.split(",")):
            address = _address(hop)
            if address is None:
                return peer
            if not self._is_trusted(address):
                return address
        return peer

    def _is_trusted(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.trusted)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _address(hop: str) -> str | None:
    """A hop of `X-Forwarded-For` as a plain address (its port, brackets and spaces dropped), or None."""
    hop = hop.strip()
    if hop.startswith("["):  # [v6]:port
        hop = hop[1 : hop.find("]")] if "]" in hop else ""
    elif hop.count(":") == 1:  # v4:port
        hop = hop.split(":", 1)[0]
    ip = _ip(hop)
    return None if ip is None else str(ip)
