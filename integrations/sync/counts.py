"""After a full sync, compare how many records Salesforce holds with how
many Trig stored, so that a gap no error told of still shows."""

import logging
from collections.abc import Callable
from datetime import UTC

from integrations.models import ObjectMapping, SyncRun
from integrations.salesforce.client import (
    SalesforceClient,
    SalesforceClientError,
    query_path,
)
from integrations.salesforce.schema import RunSchema
from integrations.sync.load import rows_stored_count

logger = logging.getLogger(__name__)

Note = Callable[[str, str], None]


def counts_compare(
    *,
    run: SyncRun,
    client: SalesforceClient,
    schema: RunSchema,
    mappings: list[ObjectMapping],
    note: Note,
) -> bool:
    """Count each object this run read to the end, in Salesforce and in
    Trig; keep both on the run and return whether Salesforce holds more.

    Salesforce counts only records made before the run began, so one made
    while it ran is no gap. A filtered object is left out: its filter is
    checked against Salesforce only. Five counts go in one Composite call.
    """
    started = run.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    counted: list[tuple[ObjectMapping, int]] = []
    for mapping in mappings:
        if mapping.object_name not in run.objects_done or mapping.filter.strip():
            continue
        stored = rows_stored_count(
            mapping=mapping, described=schema.describe(mapping.object_name)
        )
        if stored is not None:
            counted.append((mapping, stored))

    short = False
    for start in range(0, len(counted), client.MAX_COMPOSITE_QUERIES):
        part = counted[start : start + client.MAX_COMPOSITE_QUERIES]
        paths = [
            query_path(
                soql=f"SELECT COUNT() FROM {mapping.object_name} "
                f"WHERE CreatedDate < {started}"
            )
            for mapping, _ in part
        ]
        try:
            answers = client.composite_reads(paths=paths)
        except SalesforceClientError as exc:
            logger.warning(
                "Salesforce counts unreadable run_id=%s error=%s", run.pk, exc
            )
            return short
        for (mapping, stored), answer in zip(part, answers, strict=True):
            total = answer.body.get("totalSize") if answer.is_success else None
            if not isinstance(total, int) or isinstance(total, bool):
                continue
            name = mapping.object_name
            run.record_counts[name] = {"salesforce": total, "stored": stored}
            if total > stored:
                short = True
                note(
                    name,
                    f"Salesforce holds {total:,} {name} records made before this "
                    f"sync began and Trig holds {stored:,}: {total - stored:,} "
                    "missing. The next full sync reads the object again.",
                )
    return short
