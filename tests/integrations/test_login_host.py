from urllib.parse import urlsplit

import pytest
import responses

from integrations.models import SalesforceConnection, SyncRun
from integrations.offline_org import offline_org_connect
from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.testing import mount
from integrations.salesforce.oauth import LoginHostError, login_host_normalize
from integrations.sync.run import connection_sync
from people.models import Person


@pytest.mark.parametrize(
    ("raw", "environment", "host"),
    [
        ("", "production", "login.salesforce.com"),
        ("", "sandbox", "test.salesforce.com"),
        ("https://acme.my.salesforce.com/", "production", "acme.my.salesforce.com"),
        ("ACME.my.salesforce.com", "production", "acme.my.salesforce.com"),
        (
            "https://acme--uat.sandbox.my.salesforce.com",
            "sandbox",
            "acme--uat.sandbox.my.salesforce.com",
        ),
        (
            "https://acme.lightning.force.com/lightning/page/home",
            "production",
            "acme.my.salesforce.com",
        ),
        (
            "acme--uat.sandbox.lightning.force.com",
            "sandbox",
            "acme--uat.sandbox.my.salesforce.com",
        ),
        ("https://offline-org.test", "production", "offline-org.test"),
    ],
)
def test_it_accepts_salesforce_login_hosts(raw, environment, host):
    assert login_host_normalize(raw=raw, environment=environment) == host


@pytest.mark.parametrize(
    ("raw", "environment"),
    [
        ("https://evil.example.com", "production"),
        ("https://login.salesforce.com.evil.example", "production"),
        ("https://acme.my.salesforce.com.evil.example", "production"),
        ("https://user@acme.my.salesforce.com", "production"),
        ("https://acme.my.salesforce.com:8443", "production"),
        ("test.salesforce.com", "production"),
        ("acme--uat.sandbox.my.salesforce.com", "production"),
        ("login.salesforce.com", "sandbox"),
        ("javascript:alert(1)", "production"),
        ("http://[::1", "production"),
    ],
)
def test_it_refuses_hosts_outside_salesforce_or_of_the_other_environment(
    raw, environment
):
    with pytest.raises(LoginHostError):
        login_host_normalize(raw=raw, environment=environment)


@pytest.mark.parametrize(
    "raw", ["acme", "127.0.0.1:8444", "https://acme.my.salesforce.com:8443"]
)
def test_a_refused_address_says_which_addresses_are_accepted(raw):
    with pytest.raises(LoginHostError) as refused:
        login_host_normalize(raw=raw, environment="production")

    assert str(refused.value) == (
        f"{raw!r} is not a Salesforce login address. Use login.salesforce.com, "
        "test.salesforce.com or your My Domain (NAME.my.salesforce.com)."
    )


# (what staff typed, environment, the login host that issues the grant, the
# instance the token answers name): the org answers on both hosts.
TWO_HOSTS = [
    ("", "production", "login.salesforce.com", "https://acme.my.salesforce.com"),
    (
        "https://acme.my.salesforce.com",
        "production",
        "acme.my.salesforce.com",
        "https://na139.salesforce.com",
    ),
    (
        "",
        "sandbox",
        "test.salesforce.com",
        "https://acme--uat.sandbox.my.salesforce.com",
    ),
    (
        "https://acme--uat.sandbox.lightning.force.com/lightning/page/home",
        "sandbox",
        "acme--uat.sandbox.my.salesforce.com",
        "https://cs42.salesforce.com",
    ),
]


@pytest.fixture
def two_hosts(request, member):
    """An org whose grant comes from one host and whose API is on another."""
    raw, environment, login_host, instance_url = request.param
    org = OfflineOrg(instance_url=instance_url)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mount(org, base_url=f"https://{login_host}", mock=mock)
        mount(org, base_url=instance_url, mock=mock)
        connection = offline_org_connect(
            workspace=member.workspace,
            user=member.user,
            login_host=raw,
            environment=environment,
        )
        yield org, connection, mock, login_host, instance_url


def _hosts(mock, *, path: str, grant_type: str | None = None) -> list[str]:
    return [
        urlsplit(call.request.url).netloc
        for call in mock.calls
        if urlsplit(call.request.url).path.startswith(path)
        and (grant_type is None or f"grant_type={grant_type}" in call.request.body)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("two_hosts", TWO_HOSTS, indirect=True)
def test_a_refresh_goes_to_the_host_that_issued_the_grant_and_reads_to_the_instance(
    two_hosts,
):
    org, connection, mock, login_host, instance_url = two_hosts
    org.expire_access_tokens()

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    refreshes = _hosts(mock, path="/services/oauth2/token", grant_type="refresh_token")
    assert run.status == SyncRun.Status.SUCCESS
    assert connection.login_host == login_host
    assert connection.instance_url == instance_url
    assert refreshes == [login_host]
    assert _hosts(mock, path="/services/oauth2/") == [login_host] * 4
    assert set(_hosts(mock, path="/services/data/")) == {urlsplit(instance_url).netloc}
    assert set(_hosts(mock, path="/")) == {login_host, urlsplit(instance_url).netloc}
    assert Person.objects.count() == org.store.count("Contact")


@pytest.mark.django_db
@pytest.mark.parametrize("two_hosts", TWO_HOSTS[2:3], indirect=True)
def test_a_sandbox_grant_gone_asks_for_a_reconnect_naming_the_sandbox_refresh(
    two_hosts,
):
    org, connection, mock, login_host, _ = two_hosts
    org.revoke_grants()

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    refreshes = _hosts(mock, path="/services/oauth2/token", grant_type="refresh_token")
    assert run.status == SyncRun.Status.FAILED
    assert connection.status == SalesforceConnection.Status.RECONNECT_REQUIRED
    assert "sandbox refresh" in connection.status_reason
    assert refreshes == [login_host]
