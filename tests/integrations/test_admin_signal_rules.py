"""Staff set up signal rules in the admin; each is checked when saved."""

import pytest
from django.urls import reverse

from integrations.models import ObjectMapping, SignalRule
from integrations.sync.run import connection_sync

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:integrations_signalrule_add")


@pytest.fixture
def synced(org, org_http, connection):
    # The rules are checked against the describe the sync stores.
    connection_sync(connection=connection)
    return connection


def _mapping(connection, object_name: str) -> ObjectMapping:
    return ObjectMapping.objects.get(connection=connection, object_name=object_name)


def _moved_to(connection, **overrides):
    data = {
        "object_mapping": _mapping(connection, "Opportunity").pk,
        "name": "Opportunity won",
        "kind": "moved_to",
        "field_name": "stagename",
        "value": "closed won",
        "condition": "",
        "is_enabled": "on",
    }
    data.update(overrides)
    return data


def _new_matching(connection, **overrides):
    data = {
        "object_mapping": _mapping(connection, "Lead").pk,
        "name": "Inbound lead in target segment",
        "kind": "new_matching",
        "field_name": "",
        "value": "",
        "condition": "LeadSource = 'Web' AND Industry IN ('Banking', 'Insurance')",
        "is_enabled": "on",
    }
    data.update(overrides)
    return data


def test_staff_set_up_opportunity_moved_to_closed_won(synced, staff_client):
    response = staff_client.post(ADD_URL, _moved_to(synced))

    assert response.status_code == 302, response.content.decode()[:3000]
    rule = SignalRule.objects.get()
    # Kept as describe spells the field and the picklist value.
    assert (rule.field_name, rule.value) == ("StageName", "Closed Won")
    assert rule.object_mapping.connection == synced


def test_staff_set_up_a_new_inbound_lead_in_a_target_segment(synced, staff_client):
    response = staff_client.post(ADD_URL, _new_matching(synced, value="stray"))

    assert response.status_code == 302, response.content.decode()[:3000]
    rule = SignalRule.objects.get()
    assert rule.condition.startswith("LeadSource = 'Web'")
    assert rule.value == ""


def test_a_rule_is_checked_against_a_describe_made_now_before_any_sync(
    org, org_http, connection, staff_client
):
    from integrations.sync.defaults import mapping_create_defaults

    mapping_create_defaults(connection=connection)

    response = staff_client.post(ADD_URL, _moved_to(connection, value="Won"))

    assert response.status_code == 200
    assert "is not one of StageName&#x27;s values" in response.content.decode()


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"field_name": "Stage"}, "Opportunity has no field Stage"),
        ({"field_name": " "}, "Name the field that moves, e.g. StageName."),
        ({"value": "Won"}, "&#x27;Won&#x27; is not one of StageName&#x27;s values"),
        ({"value": ""}, "name the value the field moves to"),
        ({"field_name": "Probability", "value": "90"}, "Probability is not imported"),
        ({"field_name": "Amount", "value": "lots"}, "&#x27;lots&#x27; is not a number"),
    ],
)
def test_the_admin_refuses_a_bad_move_with_the_reason(
    synced, staff_client, overrides, reason
):
    response = staff_client.post(ADD_URL, _moved_to(synced, **overrides))

    assert response.status_code == 200
    assert reason in response.content.decode()
    assert not SignalRule.objects.exists()


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("LeadSource = ", "This is not a SOQL condition"),
        ("LeadSource = 'Web' AND", "This is not a SOQL condition"),
        ("LeadSource = 'Web' ORDER BY Name", "This is not a SOQL condition"),
        ("", "Write the condition a new record meets."),
        ("Shoe__c = 'x'", "Lead has no field Shoe__c"),
        ("Rating = 'Hot'", "Rating is not imported for this object"),
        ("Owner.Name = 'x'", "Owner.Name is a field of a related record"),
        ("Industry = 'Bankng'", "&#x27;Bankng&#x27; is not one of Industry&#x27;s"),
        ("Industry INCLUDES ('Banking')", "INCLUDES"),
    ],
)
def test_the_admin_refuses_a_bad_condition_with_the_reason(
    synced, staff_client, condition, reason
):
    response = staff_client.post(ADD_URL, _new_matching(synced, condition=condition))

    assert response.status_code == 200
    assert reason in response.content.decode()
    assert not SignalRule.objects.exists()


def test_the_mapping_page_lists_its_rules(synced, staff_client):
    staff_client.post(ADD_URL, _moved_to(synced))
    opportunities = _mapping(synced, "Opportunity")

    page = staff_client.get(
        reverse("admin:integrations_objectmapping_change", args=[opportunities.pk])
    ).content.decode()

    assert "Opportunity won" in page
    assert "StageName moved to Closed Won" in page


def test_a_rule_links_to_the_events_it_raised(synced, staff_client):
    staff_client.post(ADD_URL, _moved_to(synced))
    rule = SignalRule.objects.get()

    page = staff_client.get(
        reverse("admin:integrations_signalrule_change", args=[rule.pk])
    ).content.decode()

    assert "The events this rule raised" in page
    assert f"kind=signal.raised&amp;q=signal%3A{rule.pk}%3A" in page
