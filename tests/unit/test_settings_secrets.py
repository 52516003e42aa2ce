"""Secrets in the settings: never in their repr, never echoed by a refused setting; a JWKS only over https."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from fcfs.settings import Settings
from fcfs.tokens import load_jwks

SECRETS = {
    "admin_token": "admin-0f3c9a1b7d",
    "request_id_secret": "ids-77ab12cd9e",
    "metrics_token": "scrape-5e6f7a8b",
    "jwt_secret": "jwt-1a2b3c4d5e",
    "dashboard_password": "board-9z8y7x",
}


def test_secrets_are_secret_types_and_never_in_the_repr() -> None:
    settings = Settings(_env_file=None, **SECRETS)  # type: ignore[call-arg, arg-type]
    for name, value in SECRETS.items():
        assert isinstance(getattr(settings, name), SecretStr), name
        assert getattr(settings, name).get_secret_value() == value
        assert value not in repr(settings) and value not in str(settings), name


def test_a_refused_setting_does_not_echo_the_secrets() -> None:
    """USER_AUTH=jwt without a key is refused: the error names the problem and shows none of the inputs."""
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, user_auth="jwt", **{k: v for k, v in SECRETS.items() if k != "jwt_secret"})  # type: ignore[call-arg, arg-type]
    text = str(refused.value)
    assert "USER_AUTH=jwt needs" in text
    assert not [v for v in SECRETS.values() if v in text], text
    with pytest.raises(ValidationError) as bad_value:
        Settings(_env_file=None, max_body_bytes="admin-0f3c9a1b7d")  # type: ignore[call-arg, arg-type]
    assert "admin-0f3c9a1b7d" not in str(bad_value.value) and "max_body_bytes" in str(bad_value.value)


@pytest.mark.parametrize("url", ["http://keys.example/jwks.json", "file:///etc/jwks.json", "ftp://x/jwks"])
def test_a_jwks_is_read_over_https_or_from_a_file_only(url: str) -> None:
    with pytest.raises(ValidationError, match="https"):
        Settings(_env_file=None, user_auth="jwt", jwt_jwks=url)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="https"):
        load_jwks(url)
    Settings(_env_file=None, user_auth="jwt", jwt_jwks="https://keys.example/jwks.json")  # type: ignore[call-arg]
