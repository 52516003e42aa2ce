"""A fair opening: the pre-queue, held until the campaign opens, then decided in log order or by a committed draw.

A campaign with `pre_queue_seconds` takes requests from that long before `starts_at`. The worker does not decide
them: it holds them (`pre_queue`, in the transaction that stores its offsets) until the **draw**, which decides
the whole pre-queue in one transaction under the campaign's row lock, then every later request is decided
first-come-first-served in log order, as always. The pre-queue closes at the first request in the campaign's log
stamped at or after `starts_at` (the worker draws before deciding it), or, when none comes, `PRE_QUEUE_GRACE_S`
after `starts_at` once the worker has read the campaign's partition that far: to its end, or to a request (of any
campaign sharing the partition) stamped `PRE_QUEUE_GRACE_S` after `starts_at` or later. A request stamped before
`starts_at` that reaches the log after that (a slower API process's clock, a slow produce) is decided in log order
after the draw.

The order of a draw:

- `FIFO`: log order (each user's first request competes; the others are DUPLICATE, as always);
- `DRAW`: each user's first request (log order), ranked by HMAC-SHA256(seed, digest ‖ requestId), lowest first;
  then every other request of those users, DUPLICATE. The seed (32 random bytes) is made when the campaign is
  created and its SHA-256 published from then on (`drawCommitment`); the digest is the SHA-256 of the pre-queue's
  content in log order (`requestId TAB userId LF` per request), so the order is fixed only when the queue closes,
  and nobody knows it before then, the operator included, unless the operator shows the seed. After the draw the
  seed is published (`drawSeed`) and anyone recomputes the order from it and the pre-queue (`python -m fcfs.draw
  verify`).

The winners are the first `stock` requests of that order (one per user); the order goes on for the FAILs: a unit
released or added later goes to the earliest FAIL in it (fcfs/claims.py). The draw's history rows are written in
this order, so their ids keep it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection

from fcfs.epoch import epoch_us, from_epoch_us
from fcfs.events import ParticipationEvent
from fcfs.ledger import Delivered, record_decisions
from fcfs.schema import Channel, PreQueueOrder

SEED_BYTES = 32
MAX_PRE_QUEUE_SECONDS = 7 * 24 * 3600
DECIDE_ROWS = 5_000  # the draw decides the pre-queue in statements of this many rows


def new_seed() -> str:
    """A draw's seed: 32 random bytes, in hex."""
    return secrets.token_hex(SEED_BYTES)


def commitment(seed: str) -> str:
    """What is published before the pre-queue opens: the hex SHA-256 of the seed's bytes."""
    return hashlib.sha256(bytes.fromhex(seed)).hexdigest()


class Entry(NamedTuple):
    """A held request, in log order by (partition, offset)."""

    request_id: str
    user_id: int
    partition: int
    offset: int


def queue_digest(entries: Iterable[Entry]) -> str:
    """The pre-queue's content in log order: SHA-256 of `requestId TAB userId LF` per request, in hex."""
    digest = hashlib.sha256()
    for e in entries:
        digest.update(f"{e.request_id}\t{e.user_id}\n".encode())
    return digest.hexdigest()


def rank_key(seed: str, digest: str, request_id: str) -> bytes:
    """A request's place in a DRAW: HMAC-SHA256 keyed by the seed over the queue's digest and the request id."""
    return hmac.new(bytes.fromhex(seed), bytes.fromhex(digest) + request_id.encode(), hashlib.sha256).digest()


def draw_order(order: PreQueueOrder, entries: Sequence[Entry], seed: str | None, digest: str) -> list[Entry]:
    """The order in which the pre-queue (`entries` in log order) is decided."""
    if order is PreQueueOrder.FIFO:
        return list(entries)
    if seed is None:
        raise ValueError("a DRAW needs its seed")
    seen: set[int] = set()
    firsts: list[Entry] = []
    repeats: list[Entry] = []
    for e in entries:
        (repeats if e.user_id in seen else firsts).append(e)
        seen.add(e.user_id)
    firsts.sort(key=lambda e: (rank_key(seed, digest, e.request_id), e.request_id))
    return firsts + repeats


def winners_of(ordered: Sequence[Entry], stock: int) -> list[Entry]:
    """The winners of a pre-queue decided in `ordered`: each user's first request in it, while stock lasts."""
    seen: set[int] = set()
    won: list[Entry] = []
    for e in ordered:
        if len(won) >= stock:
            break
        if e.user_id not in seen:
            seen.add(e.user_id)
            won.append(e)
    return won


# -- in the worker's transactions ----------------------------------------------------------------------------------

HOLD = (
    "INSERT INTO pre_queue (campaign_id, request_id, user_id, kafka_partition, kafka_offset, requested_at, queued_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
HELD = (
    "SELECT request_id, user_id, kafka_partition, kafka_offset, requested_at FROM pre_queue WHERE campaign_id = %s "
    "ORDER BY kafka_partition, kafka_offset"
)
DUE = (  # campaigns whose pre-queue waits for its draw past the grace: where, and when they opened
    "SELECT id, kafka_partition, starts_at FROM campaign WHERE pre_queue_seconds > 0 AND drawn_at IS NULL "
    "AND starts_at <= %s"
)


class Held(NamedTuple):
    """One request held in a pre-queue: what its decision needs."""

    entry: Entry
    requested_at: dt.datetime


def hold(
    conn: Connection, campaign_id: int, held: Sequence[tuple[ParticipationEvent, int, int]], now: dt.datetime
) -> None:
    """Hold requests (event, partition, offset) of the campaign's pre-queue until its draw."""
    if not held:
        return
    conn.exec_driver_sql(
        HOLD,
        [
            (campaign_id, e.request_id, e.user_id, p, o, from_epoch_us(e.requested_at_ms * 1000), now)
            for e, p, o in held
        ],
    )
    conn.exec_driver_sql(
        "UPDATE campaign SET pre_queued_count = pre_queued_count + %s WHERE id = %s", (len(held), campaign_id)
    )


def held_requests(conn: Connection, campaign_id: int) -> list[Held]:
    return [
        Held(Entry(rid, int(user), int(p), int(o)), at)
        for rid, user, p, o, at in conn.exec_driver_sql(HELD, (campaign_id,))
    ]


@dataclass(frozen=True)
class Drawn:
    held: int  # requests the pre-queue held
    winners: int  # of them decided SUCCESS
    stock_left: int
    digest: str


def draw(
    conn: Connection,
    campaign_id: int,
    *,
    stock: int,
    order: PreQueueOrder,
    seed: str | None,
    claim_seconds: int,
    now: dt.datetime,
) -> Drawn:
    """Decide the campaign's pre-queue (the caller holds its row lock and saw it not drawn): history rows in the
    draw's order, the counters, the draw recorded on the campaign and in the switch log."""
    held = held_requests(conn, campaign_id)
    entries = [h.entry for h in held]
    digest = queue_digest(entries)
    at = {h.entry.request_id: h.requested_at for h in held}
    ordered = draw_order(order, entries, seed, digest)
    winners = 0
    for start in range(0, len(ordered), DECIDE_ROWS):
        chunk = [
            Delivered(
                ParticipationEvent(e.request_id, campaign_id, e.user_id, epoch_us(at[e.request_id]) // 1000),
                e.partition,
                e.offset,
            )
            for e in ordered[start : start + DECIDE_ROWS]
        ]
        _, result = record_decisions(conn, campaign_id, stock, chunk, Channel.KAFKA, now, claim_seconds)
        stock -= result.successes
        winners += result.successes
    conn.exec_driver_sql(
        "UPDATE campaign SET drawn_at = %s, pre_queue_digest = %s, draw_winners = %s WHERE id = %s",
        (now, digest, winners, campaign_id),
    )
    conn.exec_driver_sql(
        "INSERT INTO campaign_switch (campaign_id, at, action, actor, address) VALUES (%s, %s, 'DRAW', 'worker', '')",
        (campaign_id, now),
    )
    return Drawn(len(held), winners, stock, digest)


class Due(NamedTuple):
    campaign_id: int
    partition: int | None
    opens_ms: int  # its start, epoch ms


def due(conn: Connection, opened_before: dt.datetime) -> list[Due]:
    """The pre-queues not drawn whose campaign opened before `opened_before`."""
    return [Due(int(c), p, epoch_us(at) // 1000) for c, p, at in conn.exec_driver_sql(DUE, (opened_before,))]


# -- checking a draw: python -m fcfs.draw verify -------------------------------------------------------------------


class Verified(NamedTuple):
    ok: bool
    lines: list[str]


def verify(
    draw_state: dict[str, Any], pre_queue: list[dict[str, str]], winners: list[dict[str, str]] | None
) -> Verified:
    """Recompute a drawn pre-queue's decisions from the published draw (`GET …/draw`), the pre-queue (`GET
    …/pre-queue.csv`) and, optionally, the winners export (`GET …/winners.csv`): whether they agree, and how."""
    lines: list[str] = []
    failed = False

    def check(good: bool, text: str) -> None:
        nonlocal failed
        failed |= not good
        lines.append(("ok    " if good else "WRONG ") + text)

    order = PreQueueOrder(draw_state["preQueueOrder"])
    seed = draw_state.get("drawSeed")
    if draw_state.get("drawnAt") is None:
        return Verified(False, ["not drawn yet: nothing to check (the seed is revealed at the draw)"])
    if order is PreQueueOrder.DRAW:
        committed = draw_state.get("drawCommitment")
        kept = seed is not None and commitment(seed) == committed
        check(kept, f"the seed's SHA-256 is the commitment published before the pre-queue opened ({committed})")
        if not kept:
            return Verified(False, lines)
    entries = [
        Entry(_cell(r["requestId"]), int(r["userId"]), int(r["kafkaPartition"]), int(r["kafkaOffset"]))
        for r in pre_queue
    ]
    entries.sort(key=lambda e: (e.partition, e.offset))
    digest = queue_digest(entries)
    check(
        digest == draw_state.get("preQueueDigest"),
        f"the pre-queue's {len(entries):,} requests have the digest {digest}",
    )
    ordered = draw_order(order, entries, seed, digest)
    expected = winners_of(ordered, int(draw_state.get("drawWinners") or 0))
    won_at_draw = {
        _cell(r["requestId"])
        for r in pre_queue
        if r["status"] in ("SUCCESS", "RELEASED") and r.get("promoted", "false") != "true"
    }
    check(
        won_at_draw == {e.request_id for e in expected},
        f"the draw's {len(expected):,} winners are the first {len(expected):,} users in the recomputed order ({order})",
    )
    if winners is not None:
        rank = {e.request_id: i for i, e in enumerate(ordered)}
        queued = [w for w in winners if _cell(w["requestId"]) in rank]  # the pre-queue's, in decision order
        first = [_cell(w["requestId"]) for w in queued if w.get("promoted", "false") != "true"]
        check(
            all(rank[a] < rank[b] for a, b in itertools.pairwise(first)) and set(first) <= won_at_draw,
            f"the winners export lists {len(first):,} of them in the draw's order ({len(expected) - len(first):,} "
            f"released, not claimed in time; {len(queued) - len(first):,} promoted later)",
        )
    return Verified(not failed, lines)


def _cell(text: str) -> str:
    """A CSV cell as exported: a leading ' guards a spreadsheet from a formula (backend/queries/winners.py)."""
    return text[1:] if text.startswith("'") else text


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import csv
    import json

    parser = argparse.ArgumentParser(prog="python -m fcfs.draw", description="Check a campaign's fair opening.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="recompute a drawn pre-queue's winners from the published files")
    check.add_argument("--draw", required=True, help="GET /api/admin/campaigns/{id}/draw, as saved (JSON)")
    check.add_argument("--pre-queue", required=True, help="GET /api/admin/campaigns/{id}/pre-queue.csv")
    check.add_argument("--winners", help="GET /api/admin/campaigns/{id}/winners.csv (optional)")
    args = parser.parse_args(argv)
    with open(args.draw, encoding="utf-8") as f:
        state = json.load(f)
    state = state.get("data", state)  # the API's envelope, or its data
    with open(args.pre_queue, encoding="utf-8", newline="") as f:
        queue = list(csv.DictReader(f))
    winners = None
    if args.winners:
        with open(args.winners, encoding="utf-8", newline="") as f:
            winners = list(csv.DictReader(f))
    result = verify(state, queue, winners)
    print(
        f"campaign {state.get('campaignId')}: {'the draw checks out' if result.ok else 'the draw does NOT check out'}"
    )
    for line in result.lines:
        print("  " + line)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
