from django.apps import AppConfig


class TrigCrmConfig(AppConfig):
    name = "trig_crm"
    verbose_name = "Workspaces"
