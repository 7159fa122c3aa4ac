"""One pinned API version: used by every request, refused when retired,
warned about when deprecated, and checked when an org is connected."""

import logging
import re

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse

from integrations.models import SalesforceConnection, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.salesforce.versions import (
    OLDEST_SUPPORTED_VERSION,
    api_version_problem,
)
from integrations.services import ConnectError
from integrations.sync.run import connection_sync
from tests.conftest import OFFLINE_HOST

pytestmark = pytest.mark.django_db

_VERSION = re.compile(r"/services/data/v([^/]+)/")


def test_every_request_of_a_sync_names_the_pinned_version(
    org, org_http, connection, settings
):
    # Contacts through Bulk, the rest through Composite and REST.
    settings.SALESFORCE_BULK_THRESHOLD = 100
    settings.SALESFORCE_BULK_POLL_SECONDS = 0
    connection_sync(connection=connection)
    connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    urls = [call.request.url for call in org_http.calls]
    api = [url for url in urls if "/services/data/v" in url]
    assert any("/jobs/query" in url for url in api)
    assert any(url.endswith("/composite") for url in api)
    assert {_VERSION.search(url)[1] for url in api} == {settings.SALESFORCE_API_VERSION}


def test_the_pinned_version_is_refused_at_startup_when_salesforce_retires_it(
    settings,
):
    assert api_version_problem(settings.SALESFORCE_API_VERSION) == ""
    assert OLDEST_SUPPORTED_VERSION > 40
    for version in ("40.0", "30.0", "sixty", "62.5"):
        assert api_version_problem(version)

    settings.SALESFORCE_API_VERSION = "40.0"
    with pytest.raises(SystemCheckError, match="SALESFORCE_API_VERSION"):
        call_command("check")


def test_a_deprecation_warning_is_logged_once_and_shown_on_the_connection(
    org, org_http, connection, settings, caplog, client, member
):
    # A version Salesforce still serves, with a warning on every answer.
    settings.SALESFORCE_API_VERSION = "40.0"
    with caplog.at_level(logging.WARNING, logger="integrations.sync.run"):
        run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCESS
    warned = [r for r in caplog.records if "warns about the API" in r.getMessage()]
    assert len(warned) == 1 and "deprecated" in warned[0].getMessage()
    connection.refresh_from_db()
    assert "deprecated" in connection.api_warning
    client.force_login(member.user)
    page = client.get(
        reverse("integrations:connection-detail", args=[connection.pk])
    ).content.decode()
    assert "Salesforce warns:" in page and "deprecated" in page

    # Pinned again to a current version, the warning goes.
    settings.SALESFORCE_API_VERSION = "62.0"
    connection_sync(connection=connection)
    connection.refresh_from_db()
    assert connection.api_warning == ""


def test_a_retired_version_fails_the_run_at_once_and_keeps_the_connection(
    org, org_http, connection, settings
):
    settings.SALESFORCE_API_VERSION = "30.0"
    before = len(org_http.calls)

    run = connection_sync(connection=connection)

    sent = [call.request.url for call in org_http.calls[before:]]
    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert "no longer serves API version 30.0" in run.error_message
    assert "update the pinned version" in run.error_message
    # Not tried again, no token refresh, and the grant is fine.
    assert len([url for url in sent if "/v30.0/" in url]) == 1
    assert not any("/oauth2/token" in url for url in sent)
    assert connection.status == SalesforceConnection.Status.CONNECTED


def test_an_org_without_the_pinned_version_is_not_connected(
    org, org_http, member, settings
):
    settings.SALESFORCE_API_VERSION = "99.0"

    with pytest.raises(ConnectError, match="does not offer Salesforce API version"):
        offline_org_connect(
            workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
        )

    assert not SalesforceConnection.objects.exists()
