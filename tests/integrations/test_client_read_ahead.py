"""A query's next page is asked for while the current one is being stored."""

import time

import pytest

from integrations.services import connection_client

pytestmark = pytest.mark.django_db

SOQL = "SELECT Id, LastName FROM Contact"


def _more_calls(mock) -> list[str]:
    return [c.request.url for c in mock.calls if "/query/01g" in c.request.url]


def _wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_the_next_page_is_asked_for_before_the_caller_wants_it(
    org, org_http, connection
):
    client = connection_client(connection=connection, batch_size=200)
    used_before = org.usage.used
    pages = client.query_pages(soql=SOQL)

    first = next(pages)

    # The caller is still busy with the first page; the second is on its way.
    assert _wait_for(lambda: len(_more_calls(org_http)) == 1)
    rest = [record for page in pages for record in page]
    ids = [record["Id"] for record in first + rest]
    assert len(ids) == len(set(ids)) == org.store.count("Contact")
    # 359 Contacts at 200 a page: the first call and one more.
    assert client.calls == 2
    assert org.usage.used - used_before == client.calls


def test_a_page_read_ahead_and_never_used_is_still_counted(org, org_http, connection):
    client = connection_client(connection=connection, batch_size=200)
    used_before = org.usage.used
    pages = client.query_pages(soql=SOQL)

    next(pages)
    pages.close()

    assert client.calls == 2
    assert org.usage.used - used_before == 2


def test_a_page_refused_while_read_ahead_is_asked_again_the_usual_way(
    org, org_http, connection
):
    client = connection_client(connection=connection, batch_size=200)
    # The first page is answered; the session has expired by the second,
    # which is the one read ahead.
    org.faults.expire_sessions(after_calls=1)
    pages = client.query_pages(soql=SOQL)

    records = [record for page in pages for record in page]

    ids = [record["Id"] for record in records]
    assert len(ids) == len(set(ids)) == org.store.count("Contact")
    more = [c for c in org_http.calls if "/query/01g" in c.request.url]
    # Refused once read ahead, refused again the usual way, then refreshed
    # and replayed.
    assert [c.response.status_code for c in more] == [401, 401, 200]
    token_calls = [c for c in org_http.calls if c.request.url.endswith("/token")]
    assert len(token_calls) == 1  # one refresh


def test_pages_are_asked_for_unindented_and_come_as_plain_dicts(
    org, org_http, connection
):
    client = connection_client(connection=connection, batch_size=200)

    first, second = client.query_pages(soql=SOQL)

    query_calls = [c for c in org_http.calls if "/query" in c.request.url]
    assert len(query_calls) == 2
    assert all("X-PrettyPrint" not in c.request.headers for c in query_calls)
    # The first page is simple-salesforce's, the second the read-ahead's.
    assert type(first[0]) is dict
    assert type(second[0]) is dict
