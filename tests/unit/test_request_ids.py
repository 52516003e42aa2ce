"""Signed request ids: issued ids verify, anything else does not; as strings they sort by issue time."""

from __future__ import annotations

import random

from fcfs.request_ids import RequestIdSigner


def test_issued_ids_verify_for_their_campaign_only() -> None:
    signer = RequestIdSigner("secret")
    issued = signer.issue(campaign_id=5, user_id=123, now_ms=1_700_000_000_000)
    back = signer.verify(5, issued.request_id)
    assert back is not None and (back.user_id, back.issued_at_ms) == (123, 1_700_000_000_000)
    assert signer.verify(6, issued.request_id) is None
    assert RequestIdSigner("other secret").verify(5, issued.request_id) is None
    assert len(issued.request_id) <= 64


def test_ids_are_unique_and_sort_as_strings_in_issue_order() -> None:
    """Issue times spread over ~50 years, shuffled: sorting the ids as strings (byte-wise, as the
    database's binary collation does) gives them back in the order of their issue times."""
    signer = RequestIdSigner("secret")
    rng = random.Random(7)
    times = rng.sample(range(1_000_000_000_000, 2_600_000_000_000), 5000)
    times += [1_700_000_000_000 + i for i in range(300)]  # and neighbours a millisecond apart
    issued = [signer.issue(1, rng.randrange(1, 2**53), now_ms=t) for t in times]
    ids = [i.request_id for i in issued]
    assert len(set(ids)) == len(ids)
    by_string = sorted(issued, key=lambda i: i.request_id.encode())
    assert [i.issued_at_ms for i in by_string] == sorted(times)


def test_tampered_or_malformed_ids_are_refused() -> None:
    signer = RequestIdSigner("secret")
    rid = signer.issue(1, 99).request_id
    body, sig = rid.split(".")
    tampered_user = body[:-2] + ("AB" if body[-2:] != "AB" else "AC") + "." + sig
    for bad in (tampered_user, body, "", ".", "a.b", rid + "x", "!" * 27 + "." + "!" * 16, "é" * 27 + "." + sig):
        assert signer.verify(1, bad) is None, bad


def test_an_id_has_one_spelling() -> None:
    """The last payload character carries 2 unused bits: setting them decodes to the same bytes, but
    that text was never issued, so it is refused (else a variant of a decided id would stay PENDING)."""
    signer = RequestIdSigner("secret")
    alphabet = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
    for _ in range(200):
        rid = signer.issue(1, 42).request_id
        body, sig = rid.split(".")
        last = alphabet.index(body[-1])
        assert last % 4 == 0  # the canonical spelling leaves them zero
        for spare in (1, 2, 3):
            variant = body[:-1] + alphabet[last + spare] + "." + sig
            assert signer.verify(1, variant) is None
        assert signer.verify(1, rid) is not None


def test_keyed_ids_are_the_same_for_the_same_campaign_user_and_key_only() -> None:
    signer = RequestIdSigner("secret")
    rid = signer.issue_keyed(5, 123, "order-1").request_id
    assert signer.issue_keyed(5, 123, "order-1").request_id == rid  # a retry is the same request
    others = {
        signer.issue_keyed(c, u, k).request_id
        for c, u, k in ((6, 123, "order-1"), (5, 124, "order-1"), (5, 123, "order-2"))
    }
    assert rid not in others and len(others) == 3
    assert RequestIdSigner("other secret").issue_keyed(5, 123, "order-1").request_id != rid
    back = signer.verify(5, rid)
    assert back is not None and (back.user_id, back.issued_at_ms) == (123, None)
    assert signer.verify(6, rid) is None
    top = signer.issue_keyed(5, 2**53 - 1, "k")
    assert signer.verify(5, top.request_id) == top and len(rid) == 44


def test_every_other_character_anywhere_makes_an_id_unknown() -> None:
    """One spelling per id: any one character changed (the unused bits of the 27th too) is not an id."""
    import string

    signer = RequestIdSigner("secret")
    for rid in (signer.issue(3, 42).request_id, signer.issue_keyed(3, 42, "k").request_id):
        for position in range(len(rid)):
            for char in string.printable + "é\x00":
                if char != rid[position]:
                    changed = rid[:position] + char + rid[position + 1 :]
                    assert signer.verify(3, changed) is None, (position, char)
        assert signer.verify(3, rid) is not None
