import pytest

from trig_crm.celery import app as celery_app

OFFLINE_HOST = "offline-org.test"


@pytest.fixture(autouse=True)
def _salesforce_settings(settings):
    settings.SALESFORCE_EXTRA_LOGIN_HOSTS = [OFFLINE_HOST]
    settings.SALESFORCE_CA_BUNDLE = ""
    settings.SALESFORCE_HTTP_BACKOFF_SECONDS = 0
    settings.SALESFORCE_BUSY_BACKOFF_SECONDS = 0


@pytest.fixture(autouse=True, scope="session")
def _celery_runs_tasks_inline():
    # Tasks run where they are sent, so a test sees their effect; they are
    # still sent only when the transaction commits.
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture
def staff_client(client, django_user_model):
    """A client signed in to the admin as a Trig representative."""
    staff = django_user_model.objects.create_superuser(
        username="rep", email="rep@trig.example", password="a-long-password"
    )
    client.force_login(staff)
    return client


@pytest.fixture
def staff_who_may(client, django_user_model):
    """Sign in a Trig representative holding only the permissions named."""
    from django.contrib.auth.models import Permission

    def sign_in(*codenames: str):
        staff = django_user_model.objects.create_user(
            username="viewer",
            email="viewer@trig.example",
            password="a-long-password",
            is_staff=True,
        )
        staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        client.force_login(staff)
        return client

    return sign_in
