"""Measure the sync against a generated offline org, and the naive way beside it.

The org is served over HTTPS from this process, in a thread; every measured
step runs in a child process (`--step`) with a throwaway SQLite database,
so the peak RSS read for a full sync is the sync's own, without the org.

The naive way does the full sync's import as a simple program would, into a
workspace and connection of its own: for each object the full sync read, in
its order, one simple-salesforce `query_all` of the same fields; then for
each record the same row the sync stores, each link (owner, person, the
organisation of its Account or of its website's domain) found by one ORM
query, and one `save()`. Past
NAIVE_LIMIT records in all, it reads the same share of every object. It
must store as many rows of each model as the full sync did, or the step
fails. The write floor inserts again the people the full sync stored, and
does nothing else: no sync can store them faster on this database.
"""

import io
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from simple_salesforce import Salesforce

from integrations.models import ObjectMapping
from integrations.salesforce.http import salesforce_session
from integrations.salesforce.schema import StoredSchema
from integrations.salesforce.soql_build import render_condition
from integrations.sync.load import rows_stored_count
from integrations.sync.plan import object_plan
from integrations.transforms import transform_apply
from people.domains import InvalidWebsite, domain_from_website
from people.models import CrmAccount, CrmRecord, Organisation, Owner, Person

# The naive way saves one row per transaction, after a query for each link;
# past this many records it would take most of the time budget, and its
# rate no longer changes.
NAIVE_LIMIT = 12_000
STEPS = ("setup", "full", "recent", "naive", "floor")
# The write floor inserts at most this many of the rows the full sync stored.
FLOOR_LIMIT = 100_000
MAPPED = ("User", "Account", "Contact", "Opportunity", "Lead")
REST_PAGE = 2000


class Command(BaseCommand):
    help = (
        "Benchmark full, recent-changes and no-change syncs against generated "
        "offline orgs, and a naive import, and print one table."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sizes",
            default="10000,100000",
            help="Contacts in each generated org, comma-separated.",
        )
        parser.add_argument("--json", dest="json_path", help="Also write figures here.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--database",
            default="sqlite",
            help=(
                '"sqlite" (a throwaway file, the default), or the URL of a '
                "PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres, "
                "where a throwaway database is made for each size and dropped after."
            ),
        )
        # Internal: one measured step, run in a child process.
        parser.add_argument("--step", choices=STEPS, help="(internal)")
        parser.add_argument("--out", help="(internal)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["step"]:
            figures = _step(options["step"])
            Path(options["out"]).write_text(json.dumps(figures))
            return

        sizes = [int(size) for size in options["sizes"].split(",") if size.strip()]
        results = {}
        for size in sizes:
            self.stderr.write(f"Benchmarking {size:,} contacts...")
            results[str(size)] = _benchmark(
                size=size, seed=options["seed"], database=options["database"]
            )
        self.stdout.write(_table(results))
        if options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps(results, indent=2) + "\n")


def _benchmark(*, size: int, seed: int, database: str) -> dict[str, Any]:
    """Serve a generated org here and run each step against it in a child."""
    from integrations.salesforce.emulator import OfflineOrg
    from integrations.salesforce.emulator.server import make_server
    from integrations.salesforce.emulator.tls import ensure_certificates

    with tempfile.TemporaryDirectory(prefix="trig-benchmark-") as directory:
        work = Path(directory)
        org = OfflineOrg(
            generate={"contacts": size},
            seed=seed,
            load_sample=False,
            # A day's allocation large enough that no budget stops a run.
            daily_api_requests=10_000_000,
        )
        calls = _CallCounter(org)
        server = make_server(calls, cert_dir=work / "certs", port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        host = f"127.0.0.1:{server.server_port}"
        database_url = (
            f"sqlite:///{work / 'benchmark.sqlite3'}"
            if database == "sqlite"
            else _throwaway_postgres(database, name=f"trig_benchmark_{os.getpid()}")
        )
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SALESFORCE_EXTRA_LOGIN_HOSTS": host,
            "SALESFORCE_CA_BUNDLE": str(ensure_certificates(work / "certs").ca),
            # As in production: DEBUG keeps every SQL statement in memory.
            "DEBUG": "0",
            "BENCHMARK_LOGIN_HOST": host,
        }
        try:
            _child("setup", env=env, work=work)
            calls.kinds.clear()
            calls.queried_inside.clear()
            calls.bulk_objects.clear()
            full = _child("full", env=env, work=work)
            kinds = dict(calls.kinds)
            queried_inside = set(calls.queried_inside)
            bulk_objects = set(calls.bulk_objects)
            sizes = {name: org.store.count(name) for name in MAPPED}
            _edit_some(org, fraction=0.01, seed=seed)
            recent = _child("recent", env=env, work=work)
            no_change = _child("recent", env=env, work=work)
            naive = _child("naive", env=env, work=work)
            floor = _child("floor", env=env, work=work)
        finally:
            server.shutdown()
            if database != "sqlite":
                _drop_postgres(database_url)

    calls_per_10k = full["api_calls"] / (full["records"] / 10_000)
    # Objects read through Bulk paid one query page to learn their size: a
    # REST call of its own, unless that page came inside a composite request.
    sizing_calls = len(bulk_objects - queried_inside)
    bulk_calls = kinds.get("bulk", 0) + sizing_calls
    bulk_records = sum(sizes[name] for name in bulk_objects)
    rest_floor = sum(
        max(1, math.ceil(count / REST_PAGE))
        for name, count in sizes.items()
        if name not in bulk_objects
    )
    return {
        "database": "sqlite" if database == "sqlite" else "postgresql",
        "full": {
            "records": full["records"],
            "records_per_s": round(full["records"] / full["seconds"]),
            "api_calls": full["api_calls"],
            "calls_per_10k": round(calls_per_10k, 2),
            "describe_calls": kinds.get("describe", 0),
            "composite_calls": kinds.get("composite", 0),
            "rest_query_calls": kinds.get("rest", 0) - sizing_calls,
            "rest_floor": rest_floor,
            "bulk_calls": bulk_calls,
            "bulk_objects": sorted(bulk_objects),
            "bulk_calls_per_10k": (
                round(bulk_calls / (bulk_records / 10_000), 2) if bulk_records else None
            ),
            "peak_rss_mb": round(full["peak_rss_kb"] / 1024, 1),
        },
        "naive": {
            "records": naive["records"],
            "records_per_s": round(naive["records"] / naive["seconds"]),
        },
        "write_floor": {
            "records": floor["records"],
            "records_per_s": round(floor["records"] / floor["seconds"]),
        },
        "recent_1pct": {
            "seconds": round(recent["seconds"], 2),
            "api_calls": recent["api_calls"],
            "rows_written": recent["rows_written"],
        },
        "no_change": {
            "api_calls": no_change["api_calls"],
            "rows_written": no_change["rows_written"],
            "objects": no_change["objects"],
        },
    }


def _edit_some(org: Any, *, fraction: float, seed: int) -> None:
    """Edit the title of a share of the Contacts, as their owners would."""
    with org.lock:
        for number, record_id in enumerate(
            org.touch_random("Contact", fraction, seed=seed)
        ):
            org.store.update(record_id, {"Title": f"Head of Benchmarks {number}"})


def _throwaway_postgres(server_url: str, *, name: str) -> str:
    """Make an empty database on the server; return its URL."""
    import psycopg

    parts = urlsplit(server_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise CommandError(f"--database: not sqlite nor a PostgreSQL URL: {server_url}")
    with psycopg.connect(server_url, autocommit=True) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}"')
        server.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def _drop_postgres(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(
        urlunsplit(parts._replace(path="/postgres")), autocommit=True
    ) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}"')


class _CallCounter:
    """Count the org's API calls by kind: composite, describe, REST query, Bulk.

    A composite request is one call whatever it holds; the objects whose
    records were queried inside one are noted in `queried_inside`, the
    objects Bulk jobs read in `bulk_objects`.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.kinds: Counter[str] = Counter()
        self.queried_inside: set[str] = set()
        self.bulk_objects: set[str] = set()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.rstrip("/").endswith("/composite"):
            self.kinds["composite"] += 1
            for soql in _subrequest_queries(_body(environ)):
                # The counts a full sync ends with read no records.
                if not soql.upper().startswith("SELECT COUNT()"):
                    self.queried_inside.update(_objects(soql))
        # /limits is read before each Bulk job, for the allocations left.
        elif "/jobs/query" in path or path.rstrip("/").endswith("/limits"):
            self.kinds["bulk"] += 1
            if environ.get("REQUEST_METHOD") == "POST":
                job = _body(environ)
                if isinstance(job, dict):
                    self.bulk_objects.update(_objects(str(job.get("query", ""))))
        elif "/describe" in path:
            self.kinds["describe"] += 1
        elif "/query" in path:
            self.kinds["rest"] += 1
        return self.app(environ, start_response)


def _body(environ: dict[str, Any]) -> Any:
    """Return a request's JSON body, handing the org an unread copy of it."""
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(size)
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        return json.loads(body)
    except ValueError:
        return None


def _subrequest_queries(composite: Any) -> list[str]:
    subrequests = (
        composite.get("compositeRequest") if isinstance(composite, dict) else None
    )
    return [
        soql
        for subrequest in subrequests or []
        if isinstance(subrequest, dict)
        for soql in parse_qs(urlsplit(str(subrequest.get("url", ""))).query).get(
            "q", []
        )
    ]


def _objects(soql: str) -> set[str]:
    return set(re.findall(r"\bFROM\s+(\w+)", soql))


def _child(step: str, *, env: dict[str, str], work: Path) -> dict[str, Any]:
    """Run one step in a child process and return its figures."""
    out = work / f"{step}.json"
    manage = Path(settings.BASE_DIR) / "manage.py"
    command = [sys.executable, str(manage), "benchmark_sync", "--step", step]
    subprocess.run([*command, "--out", str(out)], env=env, check=True)
    return json.loads(out.read_text())


def _step(step: str) -> dict[str, Any]:
    """Run one measured step in this (child) process."""
    from django.contrib.auth import get_user_model

    from integrations.models import SalesforceConnection, SyncRun
    from integrations.offline_org import offline_org_connect
    from integrations.sync.run import connection_sync
    from trig_crm.models import Membership, Workspace

    host = os.environ["BENCHMARK_LOGIN_HOST"]
    if step == "setup":
        call_command("migrate", verbosity=0)
        workspace = Workspace.objects.create(name="Benchmark", slug="benchmark")
        user = get_user_model().objects.create_user(username="benchmark")
        Membership.objects.create(workspace=workspace, user=user)
        offline_org_connect(workspace=workspace, user=user, login_host=host)
        return {}

    connection = SalesforceConnection.objects.get(workspace__slug="benchmark")
    if step == "naive":
        return _naive(connection=connection, host=host)
    if step == "floor":
        return _floor(connection=connection, host=host)

    kind = SyncRun.Kind.FULL if step == "full" else SyncRun.Kind.RECENT
    started = time.perf_counter()
    run = connection_sync(connection=connection, kind=kind)
    seconds = time.perf_counter() - started
    if run.status != SyncRun.Status.SUCCESS:
        raise RuntimeError(f"The {step} sync ended {run.status}: {run.error_message}")
    return {
        "seconds": seconds,
        "peak_rss_kb": _peak_rss_kb(),
        "records": run.records_fetched,
        "api_calls": run.api_calls,
        "rows_written": run.records_created + run.records_updated + run.records_deleted,
        "objects": len(run.objects_done),
    }


def _peak_rss_kb() -> int:
    """Return this process's peak RSS in KB, since it started this program.

    Not `ru_maxrss`: Linux carries into it the RSS of the process that
    forked this one, here the benchmark holding the whole org.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _naive(*, connection, host: str) -> dict[str, Any]:
    """Run the naive import into a workspace of its own, and check its rows."""
    from django.contrib.auth import get_user_model

    from integrations.offline_org import offline_org_connect
    from trig_crm.models import Membership, Workspace

    # Its own workspace, so its rows meet none of the real sync's.
    workspace = Workspace.objects.create(name="Naive", slug="naive")
    user = get_user_model().objects.create_user(username="naive")
    Membership.objects.create(workspace=workspace, user=user)
    naive = offline_org_connect(workspace=workspace, user=user, login_host=host)
    figures = naive_import(synced=connection, into=naive)
    mismatches = naive_rows_compare(
        synced=connection, naive=naive, limits=figures["limits"]
    )
    if mismatches:
        raise RuntimeError(
            "The naive import did not store what the full sync did: "
            + "; ".join(mismatches)
        )
    return {"seconds": figures["seconds"], "records": figures["records"]}


def naive_plans(*, synced) -> list[Any]:
    """Plan a full read of each object the connection's full sync imports, in
    its order, from the describes that sync stored."""
    schema = StoredSchema(connection=synced)
    return [
        object_plan(mapping=mapping, schema=schema, cursor=None, is_full_sync=True)
        for mapping in synced.object_mappings.filter(is_enabled=True)
        if schema.has(mapping.object_name)
    ]


def naive_counts(*, plans: list[Any]) -> dict[str, int]:
    """Count the rows the full sync stored of each planned object."""
    counts = {}
    for plan in plans:
        count = rows_stored_count(mapping=plan.mapping, described=plan.schema)
        if count is None:
            raise CommandError(
                f"{plan.schema.name} is stored as the same model as another "
                "object; the naive import cannot tell their rows apart."
            )
        counts[plan.schema.name] = count
    return counts


def naive_limits(*, counts: dict[str, int]) -> dict[str, int | None]:
    """Return how many records of each object the naive way reads: all (None)
    when the full sync stored at most NAIVE_LIMIT in all, else the same share
    of each object, so that every object is measured."""
    total = sum(counts.values())
    if total <= NAIVE_LIMIT:
        return dict.fromkeys(counts)
    return {
        name: math.ceil(count * NAIVE_LIMIT / total) for name, count in counts.items()
    }


def naive_import(*, synced, into) -> dict[str, Any]:
    """Import what the full sync of `synced` imports, the naive way, into the
    connection `into`: per object, simple-salesforce's `query_all` of the
    fields the sync reads, then per record one ORM query for each link and
    one `save()`.

    Returns the seconds taken, the records stored and each object's limit.
    """
    plans = naive_plans(synced=synced)
    limits = naive_limits(counts=naive_counts(plans=plans))
    # The statements a developer would have written by hand.
    statements = []
    for plan in plans:
        statement = f"SELECT {', '.join(plan.select)} FROM {plan.schema.name}"
        if plan.where is not None:
            statement += f" WHERE {render_condition(plan.where)}"
        if limits[plan.schema.name] is not None:
            statement += f" LIMIT {limits[plan.schema.name]}"
        statements.append(statement)

    started = time.perf_counter()
    sf = Salesforce(
        instance_url=into.instance_url,
        session_id=into.access_token,
        session=salesforce_session(),
    )
    records = 0
    for plan, statement in zip(plans, statements, strict=True):
        for record in sf.query_all(statement)["records"]:
            _naive_save(plan=plan, record=record, into=into)
            records += 1
    return {
        "seconds": time.perf_counter() - started,
        "records": records,
        "limits": limits,
    }


def _naive_save(*, plan: Any, record: dict[str, Any], into) -> None:
    """Build the row the sync stores of one record, and save() it."""
    target = plan.mapping.target
    model = _model_of(plan)
    row = model(
        workspace_id=into.workspace_id,
        connection=into,
        salesforce_id=record["Id"],
        synced_at=timezone.now(),
    )
    if target == ObjectMapping.Target.RECORD:
        row.object_name = plan.schema.name
    for field_mapping, name in plan.fields:
        value = record[name]
        if field_mapping.transform:
            value = transform_apply(
                name=field_mapping.transform,
                argument=field_mapping.transform_argument,
                value=value,
            )
        if not field_mapping.attribute:
            row.custom_values[field_mapping.value_name] = value
        elif value is None and not model._meta.get_field(field_mapping.attribute).null:
            setattr(row, field_mapping.attribute, "")
        else:
            setattr(row, field_mapping.attribute, value)
    if plan.opt_out_field is not None:
        row.has_opted_out_of_email = record[plan.opt_out_field]

    # Each link found by its own query, as the record arrives.
    for key, name in plan.lookups.items():
        linked = record[name] or ""
        if key == "owner_salesforce_id":
            row.owner_id = (
                Owner.objects.filter(connection=into, salesforce_id=linked)
                .values_list("pk", flat=True)
                .first()
                if linked
                else None
            )
            continue
        setattr(row, key, linked)
        if key == "person_salesforce_id":
            row.person_id = (
                Person.objects.filter(connection=into, salesforce_id=linked)
                .values_list("pk", flat=True)
                .first()
                if linked
                else None
            )
        else:
            row.organisation_id = (
                CrmAccount.objects.filter(connection=into, salesforce_id=linked)
                .values_list("organisation_id", flat=True)
                .first()
                if linked
                else None
            )
    if target == ObjectMapping.Target.ORGANISATION:
        try:
            domain = domain_from_website(row.website)
        except InvalidWebsite:
            domain = None
        if domain:
            row.organisation, _ = Organisation.objects.get_or_create(
                workspace_id=into.workspace_id,
                domain=domain,
                defaults={"name": row.name},
            )
        else:
            row.organisation = Organisation.objects.create(
                workspace_id=into.workspace_id, name=row.name
            )
    row.save()


def naive_rows_compare(*, synced, naive, limits: dict[str, int | None]) -> list[str]:
    """Say where the rows the naive import stored into `naive` differ in
    number from those the full sync of `synced` stored, model by model; an
    empty list when they agree.

    An object read in part should have given as many rows as its limit;
    organisations are compared only when every object was read whole.
    """
    plans = naive_plans(synced=synced)
    counts = naive_counts(plans=plans)
    expected: Counter[str] = Counter()
    models = set()
    for plan in plans:
        model = _model_of(plan)
        models.add(model)
        limit = limits.get(plan.schema.name)
        count = counts[plan.schema.name]
        expected[model.__name__] += count if limit is None else min(count, limit)
    found = {
        model.__name__: model.objects.filter(connection=naive).count()
        for model in models
    }
    if all(limit is None for limit in limits.values()):
        expected["Organisation"] = Organisation.objects.filter(
            workspace_id=synced.workspace_id
        ).count()
        found["Organisation"] = Organisation.objects.filter(
            workspace_id=naive.workspace_id
        ).count()
    return [
        f"{found[name]:,} {name} rows, where the full sync stored {expected[name]:,}"
        for name in sorted(found)
        if found[name] != expected[name]
    ]


def _model_of(plan: Any) -> Any:
    return {
        ObjectMapping.Target.OWNER: Owner,
        ObjectMapping.Target.ORGANISATION: CrmAccount,
        ObjectMapping.Target.PERSON: Person,
        ObjectMapping.Target.RECORD: CrmRecord,
    }[plan.mapping.target]


def _floor(*, connection, host: str) -> dict[str, Any]:
    """Insert the people the full sync stored once more, and nothing else.

    The same rows, columns and indexes, already turned into the database's
    values, written by the sync's own statement (COPY on PostgreSQL) in
    batches of 2,000: the database's share of a sync, which no sync of these
    rows can go below.
    """
    from django.contrib.auth import get_user_model

    from integrations.offline_org import offline_org_connect
    from people.rows import rows_prepare, rows_write
    from trig_crm.models import Membership, Workspace

    workspace = Workspace.objects.create(name="Floor", slug="floor")
    user = get_user_model().objects.create_user(username="floor")
    Membership.objects.create(workspace=workspace, user=user)
    other = offline_org_connect(workspace=workspace, user=user, login_host=host)
    rows = [
        {**row, "workspace_id": workspace.pk, "connection_id": other.pk}
        for row in Person.objects.filter(connection=connection)
        .values()[:FLOOR_LIMIT]
        .iterator()
    ]
    for row in rows:
        del row["id"]
    batches = [
        rows_prepare(Person, rows[start : start + REST_PAGE])
        for start in range(0, len(rows), REST_PAGE)
    ]

    started = time.perf_counter()
    for batch in batches:
        rows_write(batch)
    return {"seconds": time.perf_counter() - started, "records": len(rows)}


def _table(results: dict[str, dict[str, Any]]) -> str:
    header = (
        "db", "contacts", "records", "rec/s", "calls", "calls/10k",
        "describe/composite/REST/floor/Bulk", "Bulk/10k", "RSS MB",
        "naive rec/s", "x naive", "floor rec/s", "floor x naive",
        "recent 1% s", "recent calls",
        "recent rows", "no-change calls", "no-change rows",
    )  # fmt: skip
    rows = [header]
    for size, figures in results.items():
        full, naive = figures["full"], figures["naive"]
        floor = figures["write_floor"]
        rows.append(
            (
                figures["database"],
                f"{int(size):,}",
                f"{full['records']:,}",
                f"{full['records_per_s']:,}",
                str(full["api_calls"]),
                f"{full['calls_per_10k']:.2f}",
                f"{full['describe_calls']}/{full['composite_calls']}/"
                f"{full['rest_query_calls']}/{full['rest_floor']}/"
                f"{full['bulk_calls']}",
                str(full["bulk_calls_per_10k"] or "-"),
                f"{full['peak_rss_mb']:.1f}",
                f"{naive['records_per_s']:,}",
                f"{full['records_per_s'] / naive['records_per_s']:.1f}",
                f"{floor['records_per_s']:,}",
                f"{floor['records_per_s'] / naive['records_per_s']:.1f}",
                f"{figures['recent_1pct']['seconds']:.2f}",
                str(figures["recent_1pct"]["api_calls"]),
                str(figures["recent_1pct"]["rows_written"]),
                f"{figures['no_change']['api_calls']} "
                f"({figures['no_change']['objects']} objects)",
                str(figures["no_change"]["rows_written"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
        for row in rows
    ]
    if len(results) > 1:
        sizes = sorted(results, key=int)
        small, large = results[sizes[0]]["full"], results[sizes[-1]]["full"]
        lines.append(
            f"Peak RSS at {int(sizes[-1]):,} contacts is "
            f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f} times that at "
            f"{int(sizes[0]):,}."
        )
    return "\n".join(lines)
