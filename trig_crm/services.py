from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from trig_crm.models import Membership, Workspace


@transaction.atomic
def workspace_create(*, name: str, slug: str = "") -> Workspace:
    return Workspace.objects.create(name=name, slug=slug or slugify(name))


@transaction.atomic
def workspace_add_member(
    *,
    workspace: Workspace,
    email: str,
    password: str,
    role: str = Membership.Role.OWNER,
) -> Membership:
    """Create (or reuse) a sign-in for `email` and make it a member."""
    from allauth.account.models import EmailAddress

    user_model = get_user_model()
    user = user_model.objects.filter(email__iexact=email).first()
    if user is None:
        user = user_model.objects.create_user(
            username=email[:150], email=email, password=password
        )
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    membership, _ = Membership.objects.get_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    return membership
