from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "people"

    def ready(self) -> None:
        from django.db.models import Field

        from people.lookups import Among

        Field.register_lookup(Among)
