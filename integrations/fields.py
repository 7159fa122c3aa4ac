from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


def _fernet() -> MultiFernet:
    keys = settings.TOKEN_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured("TOKEN_ENCRYPTION_KEYS is empty")
    return MultiFernet([Fernet(key) for key in keys])


class EncryptedTextField(models.TextField):
    """Text stored encrypted with the first of TOKEN_ENCRYPTION_KEYS.

    Any of the keys decrypts, so a new key can be put first and the old ones
    kept until every row has been written again.
    """

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return _fernet().encrypt(value.encode()).decode()

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return _fernet().decrypt(value.encode()).decode()
        except InvalidToken as exc:
            raise ImproperlyConfigured(
                "A stored token cannot be decrypted with TOKEN_ENCRYPTION_KEYS"
            ) from exc
