from django.contrib.auth.models import AbstractBaseUser

from trig_crm.models import Workspace


def workspace_for_user(*, user: AbstractBaseUser) -> Workspace | None:
    """Return the workspace a signed-in customer works in, if any."""
    if not user.is_authenticated:
        return None
    return (
        Workspace.objects.filter(memberships__user=user)
        .order_by("memberships__created_at")
        .first()
    )
