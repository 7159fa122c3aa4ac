import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_names_salesforce_accounts_and_records_as_crm_ones(admin_client):
    response = admin_client.get(reverse("admin:app_list", args=["people"]))

    page = response.content.decode()
    assert "CRM accounts" in page
    assert "CRM records" in page
    assert "Crm" not in page
