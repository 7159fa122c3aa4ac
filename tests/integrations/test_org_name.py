"""The org's name: read when connecting, kept current by full syncs, and
never a reason for a connection to fail."""

import json

import pytest
from django.urls import reverse

from integrations.models import SalesforceConnection, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.sync.run import connection_sync
from people.models import Person
from tests.conftest import OFFLINE_HOST
from tests.factories import SalesforceConnectionFactory
from tests.integrations.support import composite_calls, sent_queries

pytestmark = pytest.mark.django_db

ORG_NAME_SOQL = "SELECT Name FROM Organization LIMIT 1"


def _connect(member) -> SalesforceConnection:
    return offline_org_connect(
        workspace=member.workspace, user=member.user, login_host=OFFLINE_HOST
    )


def _api_calls(mock, since: int = 0) -> list:
    return [c for c in mock.calls[since:] if "/services/data/v" in c.request.url]


def _subrequests(call) -> list[str]:
    return [r["url"] for r in json.loads(call.request.body)["compositeRequest"]]


def test_connecting_reads_the_org_name_once_and_keeps_the_usage_it_saw(
    org, org_http, member
):
    connection = _connect(member)

    connection.refresh_from_db()
    assert connection.org_name == "Offline Sample Org"
    assert sent_queries(org_http) == [ORG_NAME_SOQL]
    # The call counts against the org's allocation; what Salesforce said of
    # it is kept, as after a sync.
    assert len(_api_calls(org_http)) == org.usage.used == 1
    assert (connection.api_usage_used, connection.api_usage_max) == (1, 15_000)
    assert connection.api_usage_seen_at is not None


@pytest.mark.parametrize(
    "refuse",
    [
        pytest.param(
            lambda org: org.faults.fail_next(
                status=403,
                error_code="INSUFFICIENT_ACCESS",
                message="insufficient access rights on object id",
                path_contains="/query",
            ),
            id="no access to Organization",
        ),
        pytest.param(
            lambda org: org.hide_field("Organization", "Name"), id="name hidden"
        ),
        pytest.param(
            lambda org: org.faults.outage(status=503, times=10, path_contains="/query"),
            id="outage",
        ),
    ],
)
def test_a_name_that_cannot_be_read_leaves_it_empty_and_the_org_connected(
    org, org_http, member, refuse
):
    refuse(org)

    connection = _connect(member)

    connection.refresh_from_db()
    assert connection.status == SalesforceConnection.Status.CONNECTED
    assert connection.refresh_token and connection.access_token
    assert connection.object_mappings.exists()
    assert connection.org_name == ""
    # Asked once: the customer is not kept waiting for a display name.
    assert sent_queries(org_http) == [ORG_NAME_SOQL]


def test_reconnecting_keeps_the_name_when_it_cannot_be_read_again(
    org, org_http, member
):
    _connect(member)
    org.hide_field("Organization", "Name")

    connection = _connect(member)

    connection.refresh_from_db()
    assert SalesforceConnection.objects.count() == 1
    assert connection.org_name == "Offline Sample Org"


def test_a_full_sync_learns_a_new_name_inside_its_first_composite(
    org, org_http, connection
):
    connection_sync(connection=connection)
    org.rename_org("Acme Holdings")
    before = len(org_http.calls)

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    sent = _api_calls(org_http, before)
    first = next(c for c in sent if c in composite_calls(org_http))
    assert run.status == SyncRun.Status.SUCCESS
    assert connection.org_name == "Acme Holdings"
    assert _subrequests(first)[-1].endswith(
        f"/sobjects/Organization/{org.org_id}?fields=Name"
    )
    # No call of its own, and the run counts every call it made.
    assert not [c for c in sent if "Organization" in c.request.url]
    assert run.api_calls == len(sent)


def test_a_recent_changes_sync_leaves_the_name_alone(org, org_http, connection):
    connection_sync(connection=connection)
    org.rename_org("Acme Holdings")
    before = len(org_http.calls)

    connection_sync(connection=connection, kind=SyncRun.Kind.RECENT)

    connection.refresh_from_db()
    bodies = [c.request.body or b"" for c in org_http.calls[before:]]
    assert connection.org_name == "Offline Sample Org"
    assert not [body for body in bodies if b"Organization" in body]


def test_a_full_sync_refused_the_org_record_keeps_the_name_and_reads_the_rest(
    org, org_http, connection
):
    connection_sync(connection=connection)
    org.rename_org("Acme Holdings")
    org.faults.fail_next(
        status=403,
        error_code="INSUFFICIENT_ACCESS",
        path_contains="/sobjects/Organization/",
    )
    before = len(org_http.calls)

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    alone = [c.request.url for c in _api_calls(org_http, before)]
    assert run.status == SyncRun.Status.SUCCESS
    assert connection.org_name == "Offline Sample Org"
    assert Person.objects.count() == org.store.count("Contact")
    # The describes came in the composite all the same.
    assert not [url for url in alone if url.endswith("/describe/")]


def test_a_name_with_line_breaks_is_kept_on_one_line(org, org_http, connection):
    org.rename_org("Acme\r\nHoldings   Ltd")

    connection_sync(connection=connection)

    connection.refresh_from_db()
    assert connection.org_name == "Acme Holdings Ltd"


# ---------------------------------------------------------------- Where it shows


@pytest.fixture
def signed_in(client, member):
    client.force_login(member.user)
    return client


def _named_and_unnamed(member) -> tuple[SalesforceConnection, SalesforceConnection]:
    named = SalesforceConnectionFactory(
        workspace=member.workspace,
        environment=SalesforceConnection.Environment.SANDBOX,
        org_name="Acme & Co (UAT)",
    )
    unnamed = SalesforceConnectionFactory(workspace=member.workspace)
    return named, unnamed


def test_the_crm_list_names_each_org_and_keeps_its_id(signed_in, member):
    named, unnamed = _named_and_unnamed(member)

    page = signed_in.get(reverse("integrations:crm-settings")).content.decode()

    assert f"<td>Acme &amp; Co (UAT)<br><small>{named.org_id}</small></td>" in page
    assert f"<td>{unnamed.org_id}</td>" in page


def test_the_connection_page_is_headed_with_the_org_name(signed_in, member):
    named, unnamed = _named_and_unnamed(member)

    named_page = signed_in.get(
        reverse("integrations:connection-detail", args=[named.pk])
    ).content.decode()
    unnamed_page = signed_in.get(
        reverse("integrations:connection-detail", args=[unnamed.pk])
    ).content.decode()

    assert "<h1>Acme &amp; Co (UAT) · Salesforce connected</h1>" in named_page
    assert "<h1>Salesforce connected</h1>" in unnamed_page


def test_the_reconnect_page_names_the_org(signed_in, member):
    named, _ = _named_and_unnamed(member)

    page = signed_in.get(
        reverse("integrations:salesforce-connect"), {"connection": named.pk}
    ).content.decode()

    assert f"sandbox org Acme &amp; Co (UAT) ({named.org_id})" in page


def test_the_admin_lists_and_finds_connections_by_org_name(staff_client, member):
    named, unnamed = _named_and_unnamed(member)
    url = reverse("admin:integrations_salesforceconnection_changelist")

    listing = staff_client.get(url).content.decode()
    found = staff_client.get(url, {"q": "acme"}).content.decode()

    assert f"Acme &amp; Co (UAT) (Salesforce sandbox {named.org_id})" in listing
    assert f"Salesforce production {unnamed.org_id}" in listing
    assert named.org_id in found and unnamed.org_id not in found
