"""The participant page's link for a room of phones: the address people reach the door at, and its QR code."""

from __future__ import annotations

import io

import segno

from fcfs.crowd_runs import is_loopback
from fcfs.settings import Settings


def page_link(settings: Settings, campaign_id: int) -> str:
    """The participant's page of a campaign at the door's public address (PUBLIC_URL, else the public door on
    this machine, http://127.0.0.1:API_PORT: the dashboard's own API may be the operators' plane, which has no
    participant page)."""
    return f"{(settings.public_url or f'http://127.0.0.1:{settings.api_port}').rstrip('/')}/c/{campaign_id}"


def only_this_machine(link: str) -> bool:
    """Whether the link names this machine (localhost, loopback): a phone cannot follow it."""
    return is_loopback(link)


def qr_png(link: str, scale: int = 8) -> bytes:
    """The link as a QR code (PNG, error correction M, a quiet zone of 4 modules)."""
    out = io.BytesIO()
    segno.make_qr(link, error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
