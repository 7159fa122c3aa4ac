"""Describe a run's objects and read their first pages, five objects a call.

Reading an object takes a describe, then a query: two API calls per object
even when nothing changed. Salesforce's Composite resource runs up to 25 GET
subrequests, at most 5 of them queries, and counts them as one API call. So
the objects go five at a time: for each, its describe and, when an earlier
run stored a describe of it, the query that stored describe leads to.

That query is a guess made before the describe it depends on. Its answer is
used only when the describe just received leads to the very same statement;
otherwise, or when it failed, it is dropped and the object is read as it
would have been without it.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_composite_post.htm

A full sync's first request also reads the org's own record, so that the
org's name stays current at no call of its own.
"""

import logging
from dataclasses import dataclass
from typing import Any

from integrations.models import ObjectMapping, SyncCursor, SyncRun
from integrations.salesforce.client import (
    ApiLimitReached,
    ApiVersionRetired,
    OrgSettingRefused,
    ReconnectRequired,
    SalesforceClient,
    SalesforceClientError,
    SalesforceRejectedError,
    SubResponse,
    describe_path,
    org_name_from,
    org_name_path,
    query_path,
)
from integrations.salesforce.schema import RunSchema, StoredSchema
from integrations.salesforce.soql_build import QueryTooLong
from integrations.services import connection_org_name_store
from integrations.sync.plan import ObjectPlan, PlanError, object_plan

logger = logging.getLogger(__name__)

# One query per object, and a Composite request holds at most five.
OBJECTS_PER_REQUEST = SalesforceClient.MAX_COMPOSITE_QUERIES


@dataclass(frozen=True)
class _Guess:
    statement: str
    include_deleted: bool


class FirstReads:
    """Describes and first pages of a run's objects, fetched group by group.

    A group is sent just before its first object is read, not all at the
    start: its first pages are then no older than the rest of its read, and
    no more than five objects' first pages are held at once.
    """

    def __init__(
        self,
        *,
        run: SyncRun,
        client: SalesforceClient,
        schema: RunSchema,
        mappings: list[ObjectMapping],
        reads_org_name: bool = False,
    ) -> None:
        self._run = run
        self._client = client
        self._schema = schema
        # Asked once, with the first group.
        self._org_name_wanted = reads_org_name
        # The group each object opens, by the object's mapping.
        self._groups = {
            mappings[start].pk: mappings[start : start + OBJECTS_PER_REQUEST]
            for start in range(0, len(mappings), OBJECTS_PER_REQUEST)
        }
        self._pages: dict[str, tuple[_Guess, dict[str, Any]]] = {}

    def before(self, mapping: ObjectMapping) -> None:
        """Fetch the group this object opens, if it opens one.

        A Composite request that fails leaves its objects to be described
        and read one by one; only a lost grant, a refusal by the org's
        settings (sessions, Transaction Security), or the API limit is
        raised.
        """
        group = self._groups.pop(mapping.pk, None)
        if group:
            self._fetch(group)

    def take(self, *, plan: ObjectPlan) -> dict[str, Any] | None:
        """Return the first page fetched for the plan's first statement, once.

        None when nothing was fetched for the object, or when what was
        fetched answers another statement than the plan's.
        """
        fetched = self._pages.pop(plan.mapping.object_name.lower(), None)
        if fetched is None:
            return None
        guess, page = fetched
        if (
            guess.statement != plan.query.statements[0][0]
            or guess.include_deleted != plan.include_deleted
        ):
            return None
        return page

    def _fetch(self, group: list[ObjectMapping]) -> None:
        stored = StoredSchema(connection=self._run.connection)
        paths: list[str] = []
        asked: list[tuple[ObjectMapping, int, _Guess | None]] = []
        for mapping in group:
            try:
                paths.append(describe_path(mapping.object_name))
            except ValueError:
                # Not an API name: the object's own read says so.
                continue
            guess = self._guess(mapping=mapping, stored=stored)
            asked.append((mapping, len(paths) - 1, guess))
            if guess is not None:
                paths.append(
                    query_path(
                        soql=guess.statement, include_deleted=guess.include_deleted
                    )
                )
        if not paths:
            return
        org_name_at = None
        if self._org_name_wanted:
            self._org_name_wanted = False
            try:
                paths.append(org_name_path(self._run.connection.org_id))
                org_name_at = len(paths) - 1
            except ValueError:
                # Not an Id: nothing to ask for.
                pass

        try:
            replies = self._client.composite_reads(paths=paths)
        except (
            ReconnectRequired,
            OrgSettingRefused,
            ApiLimitReached,
            ApiVersionRetired,
        ):
            # The objects read one by one would meet the same refusal.
            raise
        except SalesforceClientError as exc:
            logger.warning(
                "Composite read failed, reading objects one by one "
                "connection_id=%s run_id=%s error=%s",
                self._run.connection_id,
                self._run.pk,
                exc.code or exc.status,
            )
            return

        if org_name_at is not None:
            self._take_org_name(replies[org_name_at])
        for mapping, index, guess in asked:
            described = replies[index]
            # A failed describe is left to the object's own read, which
            # describes it again and reports what Salesforce says.
            if not described.is_success:
                continue
            try:
                self._schema.prime(mapping.object_name, body=described.body)
            except SalesforceRejectedError:
                logger.warning(
                    "Describe inside a composite was not a describe "
                    "run_id=%s object=%s",
                    self._run.pk,
                    mapping.object_name,
                )
                continue
            if guess is None:
                continue
            page = replies[index + 1]
            if page.is_success and _is_query_page(page.body):
                self._pages[mapping.object_name.lower()] = (guess, page.body)
            else:
                logger.info(
                    "First page not usable from a composite, reading it alone "
                    "run_id=%s object=%s error=%s",
                    self._run.pk,
                    mapping.object_name,
                    page.error_code or page.status,
                )

    def _take_org_name(self, reply: SubResponse) -> None:
        """Store the org's name if Salesforce gave it; else keep the one stored.

        A user who may not read Organization, or a field hidden from them,
        costs the name's refresh only.
        """
        if not reply.is_success:
            logger.info(
                "Org name not read run_id=%s error=%s",
                self._run.pk,
                reply.error_code or reply.status,
            )
            return
        try:
            name = org_name_from(reply.body)
        except SalesforceRejectedError:
            logger.warning("Org record came without its name run_id=%s", self._run.pk)
            return
        connection_org_name_store(connection=self._run.connection, name=name)

    def _guess(self, *, mapping: ObjectMapping, stored: StoredSchema) -> _Guess | None:
        """Return the first statement the stored describe leads to, if one
        statement reads the object."""
        if not stored.has(mapping.object_name):
            return None
        cursor = SyncCursor.objects.filter(
            connection=self._run.connection, object_name=mapping.object_name
        ).first()
        try:
            plan = object_plan(
                mapping=mapping,
                schema=stored,
                cursor=cursor,
                is_full_sync=self._run.kind == SyncRun.Kind.FULL,
            )
        except (PlanError, QueryTooLong):
            return None
        if plan.query.is_split:
            return None
        return _Guess(
            statement=plan.query.statements[0][0],
            include_deleted=plan.include_deleted,
        )


def _is_query_page(body: Any) -> bool:
    """Tell whether a subrequest's answer has the shape of a query page.

    Anything else is left to the object's own read, which asks again.
    https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
    """
    return (
        isinstance(body, dict)
        and isinstance(body.get("records"), list)
        and isinstance(body.get("done"), bool)
    )
