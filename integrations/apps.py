from django.apps import AppConfig
from django.core import checks


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self) -> None:
        from integrations.salesforce.versions import check_api_version

        checks.register(check_api_version)
