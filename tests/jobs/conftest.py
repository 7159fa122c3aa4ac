import pytest

from tests.integrations.conftest import connection, member, org, org_http
from tests.jobs.support import people_for

__all__ = ["connection", "member", "org", "org_http"]


@pytest.fixture(autouse=True)
def _quick_writeback(settings):
    # No waiting between attempts, no gathering of events, cheap passwords.
    settings.JOBS_WRITE_BACKOFF_SECONDS = 0
    settings.JOBS_WRITE_DELAY_SECONDS = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(org, connection):
    """People for the sample org's first Contacts that belong to an Account."""
    return people_for(org=org, connection=connection, count=20)


@pytest.fixture
def person(people):
    return people[0]
