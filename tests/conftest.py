import pytest

OFFLINE_HOST = "offline-org.test"


@pytest.fixture(autouse=True)
def _salesforce_settings(settings):
    settings.SALESFORCE_EXTRA_LOGIN_HOSTS = [OFFLINE_HOST]
    settings.SALESFORCE_CA_BUNDLE = ""
    settings.SALESFORCE_HTTP_BACKOFF_SECONDS = 0
    settings.CELERY_TASK_ALWAYS_EAGER = True
