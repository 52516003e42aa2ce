"""User tokens (USER_AUTH=jwt): the user is the token's `sub`; anything else about a token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr

from fcfs.settings import Settings
from fcfs.tokens import Unauthenticated, UserTokens, mint

SECRET = "a-test-secret-of-enough-length-for-hs256"


def settings(**changes: Any) -> Settings:
    base: dict[str, Any] = {
        "user_auth": "jwt",
        "jwt_secret": SecretStr(SECRET),
        "jwt_audience": "fcfs",
        "jwt_issuer": "shop",
    }
    return Settings(_env_file=None, **{**base, **changes})  # type: ignore[call-arg]


def claims_of(changes: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    full = {"sub": "42", "aud": "fcfs", "iss": "shop", "iat": now, "exp": now + 60, **changes}
    return {k: v for k, v in full.items() if v is not None}


def token(changes: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256", **headers: Any) -> str:
    return jwt.encode(claims_of(changes), key, algorithm=algorithm, headers=headers or None)


def forged(algorithm: str, mac_key: bytes | None) -> str:
    """A token PyJWT refuses to make: `alg: none`, or HS256 keyed with a public key (algorithm confusion)."""

    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': algorithm, 'typ': 'JWT'})}.{part(claims_of({}))}"
    if mac_key is None:
        return signing_input + "."
    mac = hmac.new(mac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_the_user_is_the_tokens_sub() -> None:
    tokens = UserTokens(settings())
    assert tokens.user(f"Bearer {token({})}") == 42
    assert tokens.user(f"bearer {token({'sub': '9007199254740991'})}".encode()) == 9_007_199_254_740_991
    assert tokens.user(f"Bearer {mint(settings(), 7)}") == 7  # the CLI's tokens are accepted


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        f"Token {token({})}",
        "Bearer not-a-jwt",
        f"Bearer {token({}, key='another-secret-of-enough-length-for-hs256')}",  # wrong signature
        f"Bearer {token({'exp': int(time.time()) - 120})}",  # expired beyond the leeway
        f"Bearer {token({'nbf': int(time.time()) + 120})}",  # not valid yet
        f"Bearer {token({'exp': None})}",  # no expiry
        f"Bearer {token({'exp': str(int(time.time()) + 60)})}",  # an expiry that is not a number
        f"Bearer {token({'iat': int(time.time()) + 120})}",  # issued in the future
        f"Bearer {token({'sub': None})}",
        f"Bearer {token({'aud': 'another-service'})}",
        f"Bearer {token({'aud': None})}",
        f"Bearer {token({'iss': 'someone-else'})}",
        f"Bearer {token({'sub': '0'})}",
        f"Bearer {token({'sub': '9007199254740992'})}",  # past 2^53 - 1
        f"Bearer {token({'sub': 'alice'})}",
        f"Bearer {token({'sub': '-5'})}",
        f"Bearer {token({'sub': '٤٢'})}",  # digits, but not ASCII ones
        f"Bearer {forged('none', None)}",  # unsigned
    ],
)
def test_anything_else_is_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        UserTokens(settings()).user(header)


def test_an_audience_among_several() -> None:
    assert UserTokens(settings()).user(f"Bearer {token({'aud': ['billing', 'fcfs']})}") == 42
    with pytest.raises(Unauthenticated):
        UserTokens(settings()).user(f"Bearer {token({'aud': ['billing', 'shop']})}")


def test_clocks_may_differ_by_the_leeway() -> None:
    late = token({"exp": int(time.time()) - 10})
    assert UserTokens(settings(jwt_leeway_s=30)).user(f"Bearer {late}") == 42
    with pytest.raises(Unauthenticated):
        UserTokens(settings(jwt_leeway_s=0)).user(f"Bearer {late}")


def test_public_keys_from_a_pem_file_or_a_jwks(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "public.pem"
    pem.write_bytes(
        rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    by_file = UserTokens(settings(jwt_secret=SecretStr(""), jwt_public_key_file=str(pem), jwt_algorithms="RS256"))
    assert by_file.user(f"Bearer {token({}, rsa_key, 'RS256')}") == 42
    with pytest.raises(Unauthenticated):  # HS256 signed with the public key as the secret: the classic confusion
        by_file.user(f"Bearer {forged('HS256', pem.read_bytes())}")

    keys = [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r1", "alg": "RS256"},
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e1", "alg": "ES256"},
    ]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": keys}))
    by_set = UserTokens(settings(jwt_secret=SecretStr(""), jwt_jwks=str(jwks), jwt_algorithms="RS256,ES256"))
    assert by_set.user(f"Bearer {token({'sub': '5'}, rsa_key, 'RS256', kid='r1')}") == 5
    assert by_set.user(f"Bearer {token({'sub': '6'}, ec_key, 'ES256', kid='e1')}") == 6
    for bad in (
        token({}, rsa_key, "RS256", kid="e1"),  # the wrong key for its kid
        token({}, rsa_key, "RS256", kid="unknown"),
        token({}, rsa_key, "RS256"),  # no kid
    ):
        with pytest.raises(Unauthenticated):
            by_set.user(f"Bearer {bad}")


def test_jwt_needs_a_key() -> None:
    with pytest.raises(ValueError, match="JWT_SECRET"):
        settings(jwt_secret=SecretStr(""))
