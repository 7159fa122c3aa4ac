import pytest

from integrations.salesforce.oauth import LoginHostError, login_host_normalize


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
