from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from trig_crm.models import Workspace
from trig_crm.services import workspace_add_member, workspace_create

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@trig.example"
DEMO_PASSWORD = "trig-demo-password"
STAFF_EMAIL = "staff@trig.example"


class Command(BaseCommand):
    help = "Create the demo workspace, a customer login and a Trig staff login."

    def handle(self, *args, **options) -> None:
        workspace = Workspace.objects.filter(slug=DEMO_SLUG).first()
        if workspace is None:
            workspace = workspace_create(name="Demo company", slug=DEMO_SLUG)
        workspace_add_member(
            workspace=workspace, email=DEMO_EMAIL, password=DEMO_PASSWORD
        )

        user_model = get_user_model()
        if not user_model.objects.filter(email=STAFF_EMAIL).exists():
            user_model.objects.create_superuser(
                username="staff", email=STAFF_EMAIL, password=DEMO_PASSWORD
            )

        self.stdout.write(
            "Demo workspace 'demo' is ready.\n"
            f"  Customer sign-in:  {DEMO_EMAIL} / {DEMO_PASSWORD}  (http://127.0.0.1:8000/)\n"
            f"  Trig staff admin:  staff / {DEMO_PASSWORD}  (http://127.0.0.1:8000/admin/)"
        )
