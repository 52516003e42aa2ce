"""The draw's pure parts: the commitment, the queue's digest, the order, its winners, and the check anyone runs."""

from __future__ import annotations

import hashlib

import pytest

from fcfs.draw import Entry, commitment, draw_order, new_seed, queue_digest, verify, winners_of
from fcfs.schema import PreQueueOrder

QUEUE = [Entry(f"r{i}", user, 0, 10 + i) for i, user in enumerate([7, 3, 7, 1, 9, 3, 4, 2])]


def test_the_commitment_is_the_sha256_of_the_seed_bytes_and_each_seed_is_new() -> None:
    seed = new_seed()
    assert len(seed) == 64 and seed != new_seed()
    assert commitment(seed) == hashlib.sha256(bytes.fromhex(seed)).hexdigest()


def test_the_digest_changes_with_any_request_its_user_or_the_order() -> None:
    digest = queue_digest(QUEUE)
    assert queue_digest(QUEUE[1:]) != digest
    assert queue_digest([QUEUE[1], QUEUE[0], *QUEUE[2:]]) != digest
    assert queue_digest([QUEUE[0]._replace(user_id=8), *QUEUE[1:]]) != digest
    assert queue_digest(list(QUEUE)) == digest


def test_fifo_is_log_order_and_a_draw_ranks_first_requests_then_repeats() -> None:
    seed, digest = new_seed(), queue_digest(QUEUE)
    assert draw_order(PreQueueOrder.FIFO, QUEUE, None, digest) == QUEUE
    drawn = draw_order(PreQueueOrder.DRAW, QUEUE, seed, digest)
    firsts = [e for i, e in enumerate(QUEUE) if e.user_id not in {q.user_id for q in QUEUE[:i]}]
    assert sorted(drawn[: len(firsts)]) == sorted(firsts) and drawn[len(firsts) :] == [QUEUE[2], QUEUE[5]]
    assert draw_order(PreQueueOrder.DRAW, QUEUE, seed, digest) == drawn  # the same seed and queue: the same order
    orders = {tuple(e.request_id for e in draw_order(PreQueueOrder.DRAW, QUEUE, new_seed(), digest)) for _ in range(30)}
    assert len(orders) > 10  # another seed, another order
    with pytest.raises(ValueError, match="seed"):
        draw_order(PreQueueOrder.DRAW, QUEUE, None, digest)


def test_the_winners_are_each_users_first_request_in_the_order_while_stock_lasts() -> None:
    assert [e.request_id for e in winners_of(QUEUE, 3)] == ["r0", "r1", "r3"]
    assert len(winners_of(QUEUE, 100)) == 6 and winners_of(QUEUE, 0) == []


def _published(seed: str, stock: int) -> tuple[dict[str, object], list[dict[str, str]], list[dict[str, str]]]:
    digest = queue_digest(QUEUE)
    won = {e.request_id for e in winners_of(draw_order(PreQueueOrder.DRAW, QUEUE, seed, digest), stock)}
    state = {
        "campaignId": 1,
        "preQueueOrder": "DRAW",
        "drawCommitment": commitment(seed),
        "drawSeed": seed,
        "drawnAt": "2026-12-02T00:00:00Z",
        "preQueueDigest": digest,
        "drawWinners": stock,
    }
    seen: set[int] = set()
    queue = []
    for e in QUEUE:
        status = "SUCCESS" if e.request_id in won else "DUPLICATE" if e.user_id in seen else "FAIL"
        seen.add(e.user_id)
        queue.append(
            {
                "requestId": "'" + e.request_id,
                "userId": str(e.user_id),
                "kafkaPartition": "0",
                "kafkaOffset": str(e.offset),
                "status": status,
                "promoted": "false",
            }
        )
    order = [e.request_id for e in draw_order(PreQueueOrder.DRAW, QUEUE, seed, digest)]
    winners = [{"requestId": r, "promoted": "false"} for r in order if r in won]
    return state, queue, winners


def test_verify_agrees_with_an_honest_draw_and_catches_each_lie() -> None:
    seed = new_seed()
    state, queue, winners = _published(seed, 2)
    assert verify(state, queue, winners).ok
    assert not verify({**state, "drawSeed": new_seed()}, queue, winners).ok  # not the committed seed
    assert not verify(state, queue[1:], winners).ok  # a request taken out afterwards
    loser = next(q for q in queue if q["status"] == "FAIL")
    swapped = [{**q, "status": "SUCCESS"} if q is loser else q for q in queue]
    assert not verify(state, swapped, winners).ok  # a winner the draw did not choose
    assert not verify(state, queue, winners[::-1]).ok  # the export not in the draw's order
    assert not verify({**state, "drawnAt": None}, queue, winners).ok
