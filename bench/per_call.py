"""What one call of the door's per-request work costs, on one core, outside any server:

- **the bot limits' check** (`Limits.check`, as the door calls it: an address and a user taken from the
  shared table of a fresh file), each call a new address and a new user, so both miss and take a slot;
- **a user token verified** (`USER_AUTH=jwt`, `UserTokens.user` as the door calls it: joserfc, `exp` and
  `sub` required, the algorithm pinned), HS256 with a secret and ES256 with a PEM public key, each call a
  token of its own — and the same tokens checked by PyJWT (`jwt.decode` with the same requirements, its key
  loaded once) when PyJWT is installed (it is in the development requirements, for the tests).

Medians of `--repeats` runs of `--calls` calls each, with their min–max, after a run of each not counted; the
runs of the variants in turn.
Results go to docs/benchmarks/per-call.{md,json}.

    python -m bench.per_call [--calls 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from backend.door.rate_limit import Limits, SharedBuckets
from bench.common import ROOT, heading, run_header, save_json
from fcfs.settings import get_settings
from fcfs.tokens import UserTokens, mint

OUT = ROOT / "docs" / "benchmarks"
SECRET = "a-benchmark-secret-of-thirty-two-bytes!"


def limits_check(calls: int, folder: Path) -> Callable[[], None]:
    s = get_settings()
    buckets = SharedBuckets(str(folder / "limits"))
    limits = Limits(
        buckets,
        s.participation_rate_limit,
        s.participation_rate_burst,
        s.participation_user_rate_limit,
        s.participation_user_rate_burst,
    )
    addresses = [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(calls)]
    first = [0]

    def run() -> None:
        base = first[0]
        first[0] += calls
        for n, address in enumerate(addresses):
            limits.check(address, base + n + 1)

    return run


def token_checks(calls: int, folder: Path) -> dict[str, Callable[[], None]]:
    settings = get_settings()
    private = ec.generate_private_key(ec.SECP256R1())
    (folder / "es256.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "es256.pub").write_bytes(public_pem)
    hs = settings.model_copy(
        update={"user_auth": "jwt", "jwt_secret": SecretStr(SECRET), "jwt_algorithms": "HS256", "jwt_leeway_s": 30}
    )
    es = settings.model_copy(
        update={
            "user_auth": "jwt",
            "jwt_secret": SecretStr(""),
            "jwt_public_key_file": str(folder / "es256.pub"),
            "jwt_algorithms": "ES256",
            "jwt_leeway_s": 30,
        }
    )
    hs_tokens = [mint(hs, n + 1) for n in range(calls)]
    es_tokens = [mint(es, n + 1, private_key=str(folder / "es256.pem"), algorithm="ES256") for n in range(calls)]
    variants: dict[str, Callable[[], None]] = {}
    for name, settings_of, tokens in (("HS256", hs, hs_tokens), ("ES256", es, es_tokens)):
        verifier = UserTokens(settings_of)
        headers = [f"Bearer {t}".encode() for t in tokens]
        variants[f"token {name}, joserfc (the door)"] = _each(headers, verifier.user)
    try:
        import jwt as pyjwt
    except ImportError:  # only in the development requirements
        return variants
    options: Any = {"require": ["exp", "sub"]}
    es_key = serialization.load_pem_public_key(public_pem)
    for name, key, tokens in (("HS256", SECRET, hs_tokens), ("ES256", es_key, es_tokens)):

        def decode(token: str, key: Any = key, name: str = name) -> None:
            pyjwt.decode(token, key, algorithms=[name], options=options, leeway=30)

        variants[f"token {name}, PyJWT"] = _each(tokens, decode)
    return variants


def _each(items: list[Any], call: Callable[[Any], object]) -> Callable[[], None]:
    def run() -> None:
        for item in items:
            call(item)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000, help="calls in each run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        variants = {
            "limits check (address + user)": limits_check(args.calls, folder),
            **token_checks(args.calls, folder),
        }
        runs: dict[str, list[float]] = {name: [] for name in variants}
        for run in variants.values():  # a run of each first, not counted: imports, caches, the table's pages
            run()
        for _ in range(args.repeats):
            for name, run in variants.items():
                started = time.perf_counter()
                run()
                runs[name].append((time.perf_counter() - started) / args.calls * 1e6)
    results: list[dict[str, Any]] = [
        {"call": name, "median_us": round(statistics.median(us), 1), "runs_us": [round(u, 2) for u in us]}
        for name, us in runs.items()
    ]
    figures = {**run_header(args), "results": results}
    save_json(args.out_dir / "per-call.json", figures)
    lines = [
        *heading("The door's work per call, on one core", "bench.per_call", figures, ["calls", "repeats"]),
        "",
        f"Each run makes {args.calls:,} calls in one process, outside any server; the variants' runs in turn, "
        f"medians of {args.repeats} with their min–max, after a run of each not counted. The limits: "
        "`Limits.check` on a fresh table at the shipped rates, each call a new address and a new user (both take "
        "a slot). The tokens: a new token each "
        "call, `exp` and `sub` required, the algorithm pinned; joserfc through the door's `UserTokens.user`, "
        "PyJWT's `jwt.decode` with the same requirements and its key loaded once.",
        "",
        "| call | µs per call, median (min–max) |",
        "|---|---|",
        *(f"| {r['call']} | {r['median_us']} ({_range(r['runs_us'])}) |" for r in results),
        "",
    ]
    (args.out_dir / "per-call.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _range(values: list[float]) -> str:
    return f"{min(values):.1f}–{max(values):.1f}"


if __name__ == "__main__":
    main()
