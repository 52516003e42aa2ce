"""End-user identity: the bearer tokens (JWT) the participation endpoints take with `USER_AUTH=jwt`.

With `USER_AUTH=jwt` a request takes part as the user its token names (`sub`, a user id) and no one
else; without a valid token it is refused. Tokens are verified with joserfc (BSD-3-Clause; about twice
as fast per token as PyJWT here, which re-examines its key on every call) against what the operator
configures: a shared secret (`JWT_SECRET`, HS256/384/512), a public key file (`JWT_PUBLIC_KEY_FILE`,
PEM, RS*/ES*/PS*/EdDSA) or a JWKS (`JWT_JWKS`: a file or an https URL, refreshed in the background
every `JWT_JWKS_REFRESH_S`; a token's `kid` picks the key). `exp` is required; `nbf`, `iat` are
checked when present; `aud` and `iss` must match when `JWT_AUDIENCE` / `JWT_ISSUER` are set; clocks
may differ by `JWT_LEEWAY_S`. Verification never does I/O on the request path.

Test tokens: `python -m fcfs.tokens --sub 123` prints one signed with `JWT_SECRET` (or with
`--private-key FILE --algorithm RS256`), valid for an hour.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, GuestProtocol, KeySet, OctKey, OKPKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from fcfs.events import MAX_USER_ID
from fcfs.settings import Settings, get_settings

log = logging.getLogger(__name__)


class Unauthenticated(Exception):
    """No valid token: the caller learns only that (401), the log says why."""


class UserTokens:
    """Verifies participation tokens and gives the user id they carry."""

    def __init__(self, settings: Settings) -> None:
        self.algorithms = [a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()]
        self.audience = settings.jwt_audience or None
        self.issuer = settings.jwt_issuer or None
        self.leeway = settings.jwt_leeway_s
        self._jwks_source = settings.jwt_jwks
        self._jwks_refresh_s = settings.jwt_jwks_refresh_s
        self._key: Key | None = None
        self._keys_by_id: dict[str, Key] = {}
        claims: dict[str, Any] = {"exp": {"essential": True}, "sub": {"essential": True}}
        if self.audience is not None:
            claims["aud"] = {"essential": True, "value": self.audience}
        if self.issuer is not None:
            claims["iss"] = {"essential": True, "value": self.issuer}
        # exp required and checked; nbf and iat checked when present (not in the future); the clocks' leeway
        self._claims = JWTClaimsRegistry(leeway=self.leeway, **claims)  # type: ignore[arg-type]  # a float compares alike
        if settings.jwt_jwks:
            self._keys_by_id = load_jwks(settings.jwt_jwks)
        elif settings.jwt_public_key_file:  # parsed once, not per request
            self._key = pem_key(Path(settings.jwt_public_key_file).read_bytes())
        elif settings.jwt_secret.get_secret_value():
            self._key = OctKey.import_key(settings.jwt_secret.get_secret_value())
        else:
            raise ValueError("USER_AUTH=jwt needs JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS")
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def start(self) -> None:
        """Refresh a JWKS from its URL in the background (a key rotation needs no restart)."""
        if self._jwks_source.startswith(("https://", "http://")):
            self._refresher = threading.Thread(target=self._refresh_jwks, name="jwks-refresh", daemon=True)
            self._refresher.start()

    def close(self) -> None:
        self._stop.set()

    def _refresh_jwks(self) -> None:
        while not self._stop.wait(self._jwks_refresh_s):
            try:
                self._keys_by_id = load_jwks(self._jwks_source)
            except Exception as exc:  # noqa: BLE001 - keep the keys we have; try again later
                log.warning("refreshing the JWKS failed, keeping the current keys: %s", exc)

    def user(self, authorization: bytes | str | None) -> int:
        """The user id of an `Authorization: Bearer <token>` header; Unauthenticated otherwise."""
        if isinstance(authorization, bytes):
            authorization = authorization.decode("latin-1")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("no bearer token")
        try:
            # the algorithm pinned to the configured ones; with a JWKS the key the token's kid names
            decoded = jwt.decode(token, self._key if self._key is not None else self._jwk, algorithms=self.algorithms)
            claims = decoded.claims
            self._claims.validate(claims)
        except (JoseError, TypeError, ValueError, KeyError) as exc:  # malformed, badly signed, a claim refused
            raise Unauthenticated(f"invalid token: {type(exc).__name__}: {exc}") from None
        sub = claims["sub"]
        if not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and len(sub) <= 16):
            raise Unauthenticated("sub is not a user id")
        user_id = int(sub)
        if not 1 <= user_id <= MAX_USER_ID:
            raise Unauthenticated("sub is not a user id")
        return user_id

    def _jwk(self, signed: GuestProtocol) -> Key:
        """The JWKS key the token's `kid` names, if the key allows the token's `alg` (a key's `alg` binds it)."""
        headers = signed.headers()
        kid = headers.get("kid")
        found = self._keys_by_id.get(kid) if isinstance(kid, str) else None
        if found is None:
            raise ValueError(f"no key with kid {kid!r}")
        if found.alg is not None and found.alg != headers.get("alg"):
            raise ValueError(f"the key {kid!r} is for {found.alg}, not {headers.get('alg')}")
        return found


Key = OctKey | RSAKey | ECKey | OKPKey


def pem_key(pem: bytes) -> Key:
    """A PEM key of any kind (RSA, EC, Ed25519/Ed448): a public one to verify, a private one to sign."""
    for kind in (RSAKey, ECKey, OKPKey):
        try:
            return kind.import_key(pem)
        except (JoseError, ValueError, TypeError):
            continue
    raise ValueError("not an RSA, EC or OKP key in PEM")


def load_jwks(source: str) -> dict[str, Key]:
    """The keys of a JWKS document (a file, or an https URL: never in the clear), by their `kid`."""
    if "://" in source and not source.startswith("https://"):
        raise ValueError(f"{source}: a JWKS is read from a file or an https:// URL only")
    if source.startswith("https://"):
        with urllib.request.urlopen(source, timeout=10) as response:  # the operator's own URL
            text = response.read().decode()
    else:
        text = Path(source).read_text()
    keys = {key.kid: key for key in KeySet.import_key_set(json.loads(text)).keys if key.kid}
    if not keys:
        raise ValueError(f"{source}: no keys with a kid")
    return keys


def mint(
    settings: Settings,
    sub: int,
    ttl_s: int = 3600,
    private_key: str | None = None,
    algorithm: str = "HS256",
    kid: str | None = None,
) -> str:
    """A token for user `sub`, signed with `JWT_SECRET` (or the private key), with the configured aud/iss."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": str(sub), "iat": now, "nbf": now, "exp": now + ttl_s}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    secret = settings.jwt_secret.get_secret_value()
    if not private_key and not secret:
        raise SystemExit("set JWT_SECRET, or give --private-key")
    key = pem_key(Path(private_key).read_bytes()) if private_key else OctKey.import_key(secret)
    header = {"alg": algorithm, "typ": "JWT", **({"kid": kid} if kid else {})}
    return jwt.encode(header, claims, key, algorithms=[algorithm])


def main() -> None:
    parser = argparse.ArgumentParser(description="Print a participation token for a user (USER_AUTH=jwt).")
    parser.add_argument("--sub", type=int, required=True, help="the user id")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid")
    parser.add_argument("--private-key", help="PEM private key file (default: sign with JWT_SECRET)")
    parser.add_argument("--algorithm", default="HS256")
    parser.add_argument("--kid", help="key id to put in the header (for a JWKS)")
    args = parser.parse_args()
    if not 1 <= args.sub <= MAX_USER_ID:
        parser.error(f"--sub must be from 1 to {MAX_USER_ID}")
    print(mint(get_settings(), args.sub, args.ttl, args.private_key, args.algorithm, args.kid))


if __name__ == "__main__":
    main()
