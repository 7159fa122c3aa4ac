import logging
import re
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from integrations.models import PendingAuthorization, SalesforceConnection, SyncRun
from integrations.salesforce import oauth
from integrations.salesforce.client import (
    ReconnectRequired,
    SalesforceClient,
    SalesforceClientError,
    SalesforceTransientError,
)
from integrations.salesforce.http import host_of
from integrations.sync.schedule import sync_enqueue
from people.services import clean_text
from trig_crm.models import Workspace
from trig_crm.selectors import workspace_member_emails

logger = logging.getLogger(__name__)

AUTHORIZATION_TTL = timedelta(minutes=15)
# What a completed authorization did.
CONNECTED_NEW, RECONNECTED, CONNECTED_AGAIN = "new", "reconnected", "again"
# The shape of the states `authorization_start` issues. Anything else is
# refused before the lookup: PostgreSQL fails a query holding a NUL.
_STATE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ConnectError(Exception):
    """Connecting an org failed; the message is for the customer."""


class ConnectDenied(ConnectError):
    """The customer pressed Deny on Salesforce's consent page."""


def authorization_start(
    *,
    user: AbstractBaseUser,
    workspace: Workspace,
    environment: str,
    login_host: str,
    redirect_uri: str,
) -> str:
    """Record a pending authorization and return the org's authorize URL.

    Raises `oauth.LoginHostError` for a host outside Salesforce's domains.
    """
    if environment not in SalesforceConnection.Environment.values:
        raise ConnectError("Choose production or sandbox.")
    host = oauth.login_host_normalize(raw=login_host, environment=environment)
    verifier, challenge = oauth.pkce_pair()
    state = secrets.token_urlsafe(32)

    PendingAuthorization.objects.filter(
        created_at__lt=timezone.now() - AUTHORIZATION_TTL
    ).delete()
    PendingAuthorization.objects.create(
        state=state,
        workspace=workspace,
        user=user,
        environment=environment,
        login_host=host,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )
    return oauth.authorize_url(
        login_host=host,
        state=state,
        code_challenge=challenge,
        redirect_uri=redirect_uri,
    )


def authorization_complete(
    *,
    user: AbstractBaseUser,
    state: str,
    code: str,
    error: str = "",
    error_description: str = "",
) -> tuple[SalesforceConnection, str]:
    """Turn the callback of an authorization into a connection, and say what
    it was: one of CONNECTED_NEW, RECONNECTED (a connection that needed it,
    or was disconnected) or CONNECTED_AGAIN (one still working).

    The pending authorization is used up whatever happens, so a callback can
    never be replayed. Nothing is stored unless the whole exchange succeeds.
    """
    with transaction.atomic():
        pending = (
            PendingAuthorization.objects.select_for_update(of=("self",))
            .filter(state=state, user=user, workspace__memberships__user=user)
            .first()
            if _STATE.fullmatch(state) and user.is_authenticated
            else None
        )
        if pending is None:
            raise ConnectError(
                "This connection attempt is unknown, expired or was started by "
                "someone else. Start again from the CRM settings page."
            )
        pending.delete()

    if pending.created_at < timezone.now() - AUTHORIZATION_TTL:
        raise ConnectError("The connection attempt took too long. Please try again.")
    if error:
        if error == "access_denied":
            raise ConnectDenied(
                "Access was denied in Salesforce, so nothing was connected."
            )
        raise ConnectError(
            f"Salesforce refused the connection: {error_description or error}"
        )
    if not code:
        raise ConnectError("Salesforce sent no authorization code.")
    if not pending.code_verifier:
        raise ConnectError(
            "The connection attempt lost its PKCE verifier. Please try again."
        )

    try:
        token = oauth.code_exchange(
            login_host=pending.login_host,
            code=code,
            code_verifier=pending.code_verifier,
            redirect_uri=pending.redirect_uri,
        )
        identity = oauth.identity_fetch(
            identity_url=token.identity_url, access_token=token.access_token
        )
        versions = oauth.api_versions_fetch(instance_url=token.instance_url)
    except oauth.OAuthError as exc:
        raise ConnectError(f"Salesforce refused the connection: {exc}") from exc
    if settings.SALESFORCE_API_VERSION not in versions:
        raise ConnectError(
            "This org does not offer Salesforce API version "
            f"{settings.SALESFORCE_API_VERSION}, which Trig uses (it offers "
            f"{', '.join(versions[-3:]) or 'none'}). Nothing was connected."
        )
    if not token.refresh_token:
        raise ConnectError(
            "Salesforce granted no refresh token. The Connected App must allow "
            "the 'refresh_token' scope."
        )

    # TODO: an org is one connection per workspace only. Connected from two
    # workspaces it becomes two connections, each syncing the whole org and
    # holding an approval of its own (which count toward the five per
    # Salesforce user); neither workspace is told. And a reconnect that
    # signs in to another org than the one being reconnected adds that org
    # and leaves the first waiting: the pending authorization does not say
    # which connection it reconnects. Both need a product decision (may
    # workspaces share an org? refuse or ask on a mismatch?) before code.
    was_working = SalesforceConnection.objects.filter(
        workspace=pending.workspace,
        org_id=token.org_id,
        status=SalesforceConnection.Status.CONNECTED,
    ).exists()
    connection, created = SalesforceConnection.objects.update_or_create(
        workspace=pending.workspace,
        org_id=token.org_id,
        defaults={
            "environment": pending.environment,
            "login_host": pending.login_host,
            "instance_url": token.instance_url,
            "user_id": token.user_id,
            "username": _column_text(identity.username, field="username"),
            "user_display_name": _column_text(
                identity.display_name, field="user_display_name"
            ),
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "token_issued_at": token.issued_at or timezone.now(),
            "status": SalesforceConnection.Status.CONNECTED,
            "status_reason": "",
            "connected_by": user,
            "connected_at": timezone.now(),
        },
    )
    if created:
        from integrations.sync.defaults import mapping_create_defaults

        mapping_create_defaults(connection=connection)
    connection_org_name_read(connection=connection)
    logger.info(
        "Salesforce org connected connection_id=%s org_id=%s created=%s",
        connection.pk,
        connection.org_id,
        created,
    )
    if created:
        return connection, CONNECTED_NEW
    return connection, CONNECTED_AGAIN if was_working else RECONNECTED


def _column_text(value: str, *, field: str) -> str:
    """Fit text Salesforce gave into a connection's column: PostgreSQL
    refuses a NUL, and a value longer than the column."""
    limit = SalesforceConnection._meta.get_field(field).max_length
    return clean_text(value)[:limit]


def connection_org_name_read(*, connection: SalesforceConnection) -> None:
    """Ask Salesforce for the org's name and store it, with the usage seen.

    The name only tells the customer's orgs apart: when it cannot be read
    (the user may not see Organization, the org is busy, anything else),
    the connection goes on as it is and keeps the name it had.
    """
    client = None
    try:
        client = connection_client(connection=connection)
        name = client.org_name()
    except SalesforceClientError as exc:
        logger.warning(
            "Org name unreadable connection_id=%s error=%s",
            connection.pk,
            exc.code or exc.status or type(exc).__name__,
        )
        name = ""
    except Exception:
        logger.exception("Org name unreadable connection_id=%s", connection.pk)
        name = ""

    # The call counts against the org's allocation like any other: what
    # Salesforce said of its usage is kept, as a sync keeps it.
    # TODO: calls made outside runs (this one, the admin's describes) are
    # in no run's api_calls, so "Calls by Trig's syncs" leaves them out; a
    # per-connection tally of such calls would show them.
    if client is not None:
        connection_api_usage_store(
            connection_id=connection.pk, client=client, seen_at=timezone.now()
        )
    if name:
        connection_org_name_store(connection=connection, name=name)
    logger.info(
        "Org name read connection_id=%s found=%s api_calls=%s",
        connection.pk,
        bool(name),
        client.calls if client else 0,
    )


def api_usage_columns(*, client: SalesforceClient, seen_at: datetime) -> dict:
    """Return the connection's columns for the org's API usage as the client
    last saw it in `Sforce-Limit-Info`; none when no answer carried it."""
    if not client.api_usage:
        return {}
    used, allowed = client.api_usage
    return {
        "api_usage_used": used,
        "api_usage_max": allowed,
        "api_usage_seen_at": seen_at,
    }


def connection_api_usage_store(
    *, connection_id: int, client: SalesforceClient, seen_at: datetime
) -> None:
    """Keep the org's API usage the client last saw on its connection."""
    columns = api_usage_columns(client=client, seen_at=seen_at)
    if columns:
        SalesforceConnection.objects.filter(pk=connection_id).update(**columns)


def connection_org_name_store(*, connection: SalesforceConnection, name: str) -> None:
    """Keep the org's name as Salesforce gave it; an empty one changes nothing.

    Line breaks and runs of spaces become one space: the name goes into
    e-mail subjects, where a line break is refused.
    """
    limit = SalesforceConnection._meta.get_field("org_name").max_length
    name = " ".join(clean_text(name).split())[:limit]
    if not name or name == connection.org_name:
        return
    SalesforceConnection.objects.filter(pk=connection.pk).update(org_name=name)
    connection.org_name = name


def connection_mark_reconnect_required(
    *, connection: SalesforceConnection, reason: str
) -> bool:
    """Turn a connected connection to 'reconnect required'; True if this call did.

    Only the call that makes the change tells the workspace, once the change
    is committed: workers meeting the same dead grant send one e-mail
    between them, and a connection already waiting for a reconnect sends
    none.
    """
    changed = SalesforceConnection.objects.filter(
        pk=connection.pk, status=SalesforceConnection.Status.CONNECTED
    ).update(
        status=SalesforceConnection.Status.RECONNECT_REQUIRED, status_reason=reason
    )
    if not changed:
        connection.refresh_from_db(fields=["status", "status_reason"])
        return False
    connection.status = SalesforceConnection.Status.RECONNECT_REQUIRED
    connection.status_reason = reason

    logger.warning("Salesforce grant gone connection_id=%s", connection.pk)
    from integrations.tasks import notify_reconnect_required

    transaction.on_commit(lambda: notify_reconnect_required.delay(connection.pk))
    return True


def connection_reconnect_notify(*, connection: SalesforceConnection) -> int:
    """E-mail the workspace's members that the org must be reconnected.

    Returns how many people it was sent to.
    """
    recipients = workspace_member_emails(workspace=connection.workspace)
    if not recipients:
        logger.warning("Nobody to tell of a reconnect connection_id=%s", connection.pk)
        return 0

    context = {
        "connection": connection,
        "workspace": connection.workspace,
        "instance_host": host_of(connection.instance_url),
        "connection_url": settings.SITE_URL.rstrip("/")
        + reverse("integrations:connection-detail", args=[connection.pk]),
    }
    where = (
        f"{connection.get_environment_display().lower()} org {context['instance_host']}"
    )
    # Named when the name is known: a customer may have several orgs.
    subject = (
        f"Reconnect Salesforce: {connection.org_name} ({where})"
        if connection.org_name
        else f"Reconnect Salesforce: {where}"
    )
    send_mail(
        subject=subject,
        message=render_to_string("integrations/email/reconnect_required.txt", context),
        from_email=None,
        recipient_list=recipients,
    )
    logger.info(
        "Reconnect notice sent connection_id=%s recipients=%s",
        connection.pk,
        len(recipients),
    )
    return len(recipients)


def _grant_gone_reason(
    *, connection: SalesforceConnection, error: oauth.OAuthError
) -> str:
    reason = (
        "Salesforce no longer accepts Trig's access to this org: the connected "
        "user may have been deactivated or lost permission, or approved Trig "
        "too many times elsewhere. "
    )
    if connection.environment == SalesforceConnection.Environment.SANDBOX:
        # A sandbox refresh recreates its users, and with them every grant.
        reason += "A sandbox refresh also ends it: every refresh needs a reconnect. "
    reason += (
        f"Reconnect the org. (Salesforce said: {error.description or error.error})"
    )
    return reason


def connection_refresh_token(
    *, connection: SalesforceConnection
) -> SalesforceConnection:
    """Get a new access token, one refresh per connection at a time.

    Identical refreshes sent at the same moment can fail, so the connection
    row is locked; a worker that waited finds the token already renewed and
    uses it.
    """
    stale_token = connection.access_token
    with transaction.atomic():
        locked = SalesforceConnection.objects.select_for_update().get(pk=connection.pk)
        if locked.status != SalesforceConnection.Status.CONNECTED:
            raise ReconnectRequired(locked.status_reason or "The org is not connected.")
        if locked.access_token != stale_token:
            return locked
        try:
            token = oauth.token_refresh(
                login_host=locked.login_host, refresh_token=locked.refresh_token
            )
        except oauth.OAuthError as exc:
            if not exc.is_grant_gone:
                # An outage at the login host: try again later.
                raise SalesforceTransientError(
                    f"Refreshing the access token failed: {exc}"
                ) from exc
            # Marked before the row is let go: a worker waiting for it then
            # finds the grant gone instead of sending the dead one again.
            connection_mark_reconnect_required(
                connection=connection,
                reason=_grant_gone_reason(connection=locked, error=exc),
            )
            grant_error = exc
        else:
            locked.access_token = token.access_token
            # Some Connected App policies rotate the refresh token on every use.
            if token.refresh_token:
                locked.refresh_token = token.refresh_token
            locked.instance_url = token.instance_url
            locked.token_issued_at = token.issued_at or timezone.now()
            locked.save(
                update_fields=[
                    "access_token",
                    "refresh_token",
                    "instance_url",
                    "token_issued_at",
                ]
            )
            return locked

    raise ReconnectRequired(connection.status_reason) from grant_error


def connection_client(
    *, connection: SalesforceConnection, batch_size: int | None = None
) -> SalesforceClient:
    if connection.status != SalesforceConnection.Status.CONNECTED:
        raise ReconnectRequired(connection.status_reason or "The org is not connected.")
    # Token answers carry no lifetime; the org's session timeout (two hours
    # unless changed) is the likely one. Refreshing first spares a 401.
    lifetime = timedelta(minutes=settings.SALESFORCE_SESSION_MINUTES)
    issued = connection.token_issued_at
    if issued is None or issued < timezone.now() - lifetime:
        connection = connection_refresh_token(connection=connection)
    return SalesforceClient(
        connection=connection,
        on_token_expired=lambda c: connection_refresh_token(connection=c),
        batch_size=batch_size,
    )


# A request this old is taken to have been lost with its task: a requested
# sync may wait for the one going (up to the task's 6-hour limit) and then
# run as long itself.
SYNC_REQUEST_TIMEOUT = timedelta(hours=12)


def connection_sync_request(*, connection: SalesforceConnection) -> bool:
    """Queue a full sync someone asked for; False if one asked for earlier
    has not ended, in which case nothing more is queued.

    Pressing "Sync now" again and again would otherwise queue a full sync
    per press, each waiting for the one before and then reading the whole
    org again.
    """
    now = timezone.now()
    claimed = (
        SalesforceConnection.objects.filter(pk=connection.pk)
        .filter(
            Q(sync_requested_at__isnull=True)
            | Q(sync_requested_at__lt=now - SYNC_REQUEST_TIMEOUT)
        )
        .update(sync_requested_at=now)
    )
    if not claimed:
        return False

    sync_enqueue(
        connection=connection, kind=SyncRun.Kind.FULL, trigger=SyncRun.Trigger.MANUAL
    )
    return True


def connection_sync_request_end(*, connection_id: int) -> None:
    """Let the next "Sync now" queue a sync again."""
    SalesforceConnection.objects.filter(pk=connection_id).update(sync_requested_at=None)


def connection_disconnect(*, connection: SalesforceConnection) -> bool:
    """Forget the connection's tokens and revoke Trig's grant at Salesforce.

    Imported data stays, and so do the cursors: connecting the org again
    goes on from them. The tokens are erased under the row's lock first, so
    a refresh under way cannot store new ones afterwards, and nothing
    scheduled calls the org any more. Returns False if Salesforce could not
    be told; the grant then lives on there until someone revokes it.
    """
    with transaction.atomic():
        locked = SalesforceConnection.objects.select_for_update().get(pk=connection.pk)
        refresh_token = locked.refresh_token
        SalesforceConnection.objects.filter(pk=locked.pk).update(
            access_token="",
            refresh_token="",
            status=SalesforceConnection.Status.DISCONNECTED,
            status_reason="Disconnected from Trig: Trig holds no access to this org.",
        )
    connection.refresh_from_db()
    if not refresh_token:
        return True

    try:
        oauth.token_revoke(login_host=locked.login_host, token=refresh_token)
    except oauth.OAuthError as exc:
        logger.warning(
            "Revoking failed connection_id=%s error=%s", connection.pk, exc.error
        )
        return False
    logger.info("Salesforce org disconnected connection_id=%s", connection.pk)
    return True
