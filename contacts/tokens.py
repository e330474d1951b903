"""Instagram access tokens at rest: encrypted with the keys of INSTAGRAM_TOKEN_KEYS (Fernet).

The first key encrypts, every key decrypts (`cryptography`'s MultiFernet), so keys rotate: put the new
key first, keep the old ones until `manage.py instagram_tokens_rotate` has re-encrypted every token,
then drop them (docs/deploy.md). A token is only ever decrypted right before a Graph call; it is never
logged, shown, or returned by the API.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class TokenKeyError(Exception):
    """No configured key decrypts the stored token (a key was dropped too early)."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("INSTAGRAM_TOKEN_KEYS is empty: Instagram tokens cannot be encrypted.")
    try:
        return MultiFernet([Fernet(key.strip().encode()) for key in keys])
    except ValueError as error:
        raise ImproperlyConfigured(
            "INSTAGRAM_TOKEN_KEYS must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated."
        ) from error


def _current() -> MultiFernet:
    return _fernet(tuple(k for k in settings.INSTAGRAM_TOKEN_KEYS if k.strip()))


def token_encrypt(token: str) -> str:
    return _current().encrypt(token.encode()).decode()


def token_decrypt(ciphertext: str) -> str:
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenKeyError("No key of INSTAGRAM_TOKEN_KEYS decrypts this Instagram token.") from None


def token_reencrypt(ciphertext: str) -> str:
    """The same token under the first key (key rotation)."""
    try:
        return _current().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenKeyError("No key of INSTAGRAM_TOKEN_KEYS decrypts this Instagram token.") from None
