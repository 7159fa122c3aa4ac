import pytest
from django.core.management import CommandError, call_command

from integrations.models import ObjectMapping, SignalRule, SyncRun
from people.models import Person

pytestmark = pytest.mark.django_db


def test_salesforce_sync_runs_a_full_sync_and_prints_a_summary(
    org, org_http, connection, capsys
):
    call_command("salesforce_sync", str(connection.pk), "--full")

    out = capsys.readouterr().out
    run = SyncRun.objects.get()
    assert run.kind == SyncRun.Kind.FULL and run.status == SyncRun.Status.SUCCESS
    assert Person.objects.count() == org.store.count("Contact")
    assert out.strip() == (
        f"Full sync success: {run.records_fetched} fetched, {run.records_created} "
        f"created, 0 updated, 0 unchanged, 0 failed, {run.problem_count} "
        f"note{'' if run.problem_count == 1 else 's'}, 0 signals raised, "
        f"{run.api_calls} API call{'' if run.api_calls == 1 else 's'}"
    )


def test_salesforce_sync_says_how_many_signals_it_raised(
    org, org_http, connection, capsys
):
    call_command("salesforce_sync", str(connection.pk), "--full")
    SignalRule.objects.create(
        object_mapping=ObjectMapping.objects.get(
            connection=connection, object_name="Opportunity"
        ),
        name="Opportunity won",
        kind=SignalRule.Kind.MOVED_TO,
        field_name="StageName",
        value="Closed Won",
    )
    opportunity = next(
        record
        for record in org.store.records("Opportunity")
        if record["StageName"] == "Negotiation/Review"
    )
    org.store.update(opportunity["Id"], {"StageName": "Closed Won"})
    capsys.readouterr()

    call_command("salesforce_sync", str(connection.pk))

    out = capsys.readouterr().out
    assert SyncRun.objects.get(kind=SyncRun.Kind.RECENT).signals_raised == 1
    assert ", 1 signal raised, " in out


def test_salesforce_sync_reads_recent_changes_once_a_full_sync_has_run(
    org, org_http, connection, capsys
):
    call_command("salesforce_sync", str(connection.pk))
    call_command("salesforce_sync", str(connection.pk))

    kinds = list(SyncRun.objects.order_by("started_at").values_list("kind", flat=True))
    assert kinds == [SyncRun.Kind.FULL, SyncRun.Kind.RECENT]


def test_salesforce_sync_refuses_an_unknown_connection():
    with pytest.raises(CommandError, match="No Salesforce connection with id 999"):
        call_command("salesforce_sync", "999")


def test_salesforce_sync_fails_loudly_when_the_grant_is_gone(org, org_http, connection):
    org.expire_access_tokens()
    org.revoke_grants()

    with pytest.raises(CommandError, match="Reconnect the org"):
        call_command("salesforce_sync", str(connection.pk), "--full")


def test_offline_org_connect_connects_a_workspace_and_prints_its_id(
    org, org_http, member, capsys
):
    from integrations.models import SalesforceConnection

    call_command("offline_org", "connect", "--workspace", member.workspace.slug)

    connection = SalesforceConnection.objects.get()
    assert capsys.readouterr().out.strip() == str(connection.pk)
    assert connection.workspace == member.workspace
    assert connection.org_id == org.org_id


def test_offline_org_connect_refuses_an_unknown_workspace(org, org_http, member):
    with pytest.raises(CommandError, match="No workspace with slug 'nope'"):
        call_command("offline_org", "connect", "--workspace", "nope")


def test_offline_org_connect_explains_a_host_that_is_not_allowed(org_http, member):
    with pytest.raises(CommandError, match="Add it to SALESFORCE_EXTRA_LOGIN_HOSTS"):
        call_command(
            "offline_org",
            "connect",
            "--workspace",
            member.workspace.slug,
            "--host",
            "127.0.0.1:9999",
        )
