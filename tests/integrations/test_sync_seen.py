"""The Ids a full read keeps are let go of a chunk at a time."""

import pytest

from integrations.models import SeenRecord, SyncRun
from integrations.sync import load
from people.rows import rows_insert
from tests.factories import SalesforceConnectionFactory

pytestmark = pytest.mark.django_db


def _kept(run, count, object_name="Contact"):
    rows_insert(
        SeenRecord,
        [
            {"run_id": run.pk, "object_name": object_name, "salesforce_id": f"{n:018d}"}
            for n in range(count)
        ],
    )


def test_kept_ids_are_released_in_chunks_and_only_those_asked_for(monkeypatch):
    monkeypatch.setattr(load, "SEEN_CHUNK", 40)
    run = SyncRun.objects.create(connection=SalesforceConnectionFactory())
    other = SyncRun.objects.create(connection=SalesforceConnectionFactory())
    _kept(run, 100)
    _kept(run, 7, object_name="Account")
    _kept(other, 30)

    released = load.seen_release(
        SeenRecord.objects.filter(run=run, object_name="Contact")
    )

    assert released == 100
    remaining = set(SeenRecord.objects.values_list("run_id", "object_name"))
    assert remaining == {(run.pk, "Account"), (other.pk, "Contact")}
    assert SeenRecord.objects.count() == 37
