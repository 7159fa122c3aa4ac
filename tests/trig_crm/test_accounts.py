import pytest
from django.core.management import call_command
from django.urls import reverse

from trig_crm.management.commands.demo_setup import DEMO_EMAIL, DEMO_PASSWORD
from trig_crm.models import Membership, Workspace

pytestmark = pytest.mark.django_db


def test_demo_setup_creates_a_workspace_and_a_login_that_signs_in(client, capsys):
    call_command("demo_setup")
    call_command("demo_setup")

    response = client.post(
        reverse("account_login"),
        {"login": DEMO_EMAIL, "password": DEMO_PASSWORD},
        follow=True,
    )

    assert Workspace.objects.filter(slug="demo").count() == 1
    assert Membership.objects.get().user.email == DEMO_EMAIL
    assert DEMO_EMAIL in capsys.readouterr().out
    assert response.status_code == 200
    assert "CRM integrations" in response.content.decode()


def test_a_wrong_password_does_not_sign_in(client):
    call_command("demo_setup")

    response = client.post(
        reverse("account_login"), {"login": DEMO_EMAIL, "password": "wrong"}
    )

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("integrations:crm-settings", []),
        ("integrations:salesforce-connect", []),
        ("integrations:connection-detail", [1]),
        ("integrations:connection-disconnect", [1]),
    ],
)
def test_someone_without_a_workspace_is_told_so(client, django_user_model, name, args):
    user = django_user_model.objects.create_user(
        username="loner", email="loner@example.com", password="a-long-password"
    )
    client.force_login(user)

    response = client.get(reverse(name, args=args))

    assert response.status_code == 404
    page = response.content.decode()
    assert "not in a workspace yet" in page
    # No page of the product invites people; Trig adds them in the admin.
    assert "Ask your Trig contact to add loner@example.com to yours" in page
    assert "invite" not in page


@pytest.mark.parametrize(
    "name", ["account_login", "account_signup", "account_reset_password"]
)
def test_it_shows_sign_in_pages_inside_the_products_own_page(client, name):
    response = client.get(reverse(name))

    page = response.content.decode()
    assert response.status_code == 200
    assert "<header>" in page
    assert "<strong>Trig</strong>" in page
    assert "Menu:" not in page
    assert "· Trig</title>" in page
