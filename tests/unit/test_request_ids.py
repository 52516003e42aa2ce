"""Signed request ids: issued ids verify, anything else does not."""

from __future__ import annotations

from fcfs.request_ids import RequestIdSigner


def test_issued_ids_verify_for_their_campaign_only() -> None:
    signer = RequestIdSigner("secret")
    issued = signer.issue(campaign_id=5, user_id=123, now_ms=1_700_000_000_000)
    back = signer.verify(5, issued.request_id)
    assert back is not None and (back.user_id, back.issued_at_ms) == (123, 1_700_000_000_000)
    assert signer.verify(6, issued.request_id) is None
    assert RequestIdSigner("other secret").verify(5, issued.request_id) is None
    assert len(issued.request_id) <= 64


def test_ids_are_unique_and_time_ordered() -> None:
    signer = RequestIdSigner("secret")
    ids = [signer.issue(1, 1, now_ms=1_700_000_000_000 + i).request_id for i in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids, key=lambda rid: signer.verify(1, rid).issued_at_ms)  # type: ignore[union-attr]


def test_tampered_or_malformed_ids_are_refused() -> None:
    signer = RequestIdSigner("secret")
    rid = signer.issue(1, 99).request_id
    body, sig = rid.split(".")
    tampered_user = body[:-2] + ("AB" if body[-2:] != "AB" else "AC") + "." + sig
    for bad in (tampered_user, body, "", ".", "a.b", rid + "x", "!" * 27 + "." + "!" * 16, "é" * 27 + "." + sig):
        assert signer.verify(1, bad) is None, bad
