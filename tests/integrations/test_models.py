import pytest
from django.db import connection as db_connection

from integrations.models import SalesforceConnection
from tests.factories import SalesforceConnectionFactory

pytestmark = pytest.mark.django_db


def test_it_stores_tokens_encrypted_and_reads_them_back():
    connection = SalesforceConnectionFactory(
        access_token="00Dxx!secret-access", refresh_token="5Aep-secret-refresh"
    )

    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM integrations_salesforceconnection "
            "WHERE id = %s",
            [connection.pk],
        )
        stored = cursor.fetchone()

    assert "secret" not in stored[0] and "secret" not in stored[1]
    reloaded = SalesforceConnection.objects.get(pk=connection.pk)
    assert reloaded.access_token == "00Dxx!secret-access"
    assert reloaded.refresh_token == "5Aep-secret-refresh"


def test_it_decrypts_with_an_older_key_after_rotation(settings):
    from cryptography.fernet import Fernet

    old_key = settings.TOKEN_ENCRYPTION_KEYS[0]
    connection = SalesforceConnectionFactory(access_token="before-rotation")

    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old_key]

    assert SalesforceConnection.objects.get(pk=connection.pk).access_token == (
        "before-rotation"
    )


def test_a_connection_is_named_by_its_org_and_as_before_when_the_name_is_unknown():
    named = SalesforceConnectionFactory(org_name="Acme", org_id="00D000000000001AAA")
    unnamed = SalesforceConnectionFactory(org_id="00D000000000002AAA")

    assert str(named) == "Acme (Salesforce production 00D000000000001AAA)"
    assert str(unnamed) == "Salesforce production 00D000000000002AAA"
