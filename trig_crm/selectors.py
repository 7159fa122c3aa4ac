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


def workspace_member_emails(*, workspace: Workspace) -> list[str]:
    """Return the e-mail addresses of a workspace's active members, each once."""
    emails = (
        workspace.memberships.filter(user__is_active=True)
        .exclude(user__email="")
        .order_by("created_at")
        .values_list("user__email", flat=True)
    )
    return list(dict.fromkeys(emails))
