from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from integrations import selectors, services
from integrations.forms import ConnectSalesforceForm
from integrations.salesforce.oauth import LoginHostError
from trig_crm.selectors import workspace_for_user


class NoWorkspace(Http404):
    pass


def _workspace_or_404(request: HttpRequest):
    workspace = workspace_for_user(user=request.user)
    if workspace is None:
        raise NoWorkspace("You are not a member of any workspace yet.")
    return workspace


def _members_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Show a signed-in person in no workspace the page that says so, on
    every page of the integration."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NoWorkspace:
            return render(request, "integrations/no_workspace.html", status=404)

    return wrapped


@login_required
@_members_only
def crm_settings(request: HttpRequest) -> HttpResponse:
    workspace = _workspace_or_404(request)
    connections = selectors.connection_list(workspace=workspace)
    return render(
        request,
        "integrations/crm_settings.html",
        {"workspace": workspace, "connections": connections},
    )


@login_required
@_members_only
def salesforce_connect(request: HttpRequest) -> HttpResponse:
    workspace = _workspace_or_404(request)
    # Reconnecting: the org's own login host and environment, so that the
    # customer signs in where the grant was issued.
    reconnecting = None
    pk = request.GET.get("connection", "")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if pk.isascii() and pk.isdigit():
        reconnecting = selectors.connection_get(workspace=workspace, pk=int(pk))
    initial = {}
    if reconnecting is not None:
        initial = {
            "environment": reconnecting.environment,
            "my_domain": f"https://{reconnecting.login_host}",
        }
    form = ConnectSalesforceForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            url = services.authorization_start(
                user=request.user,
                workspace=workspace,
                environment=form.cleaned_data["environment"],
                login_host=form.cleaned_data["my_domain"],
                redirect_uri=request.build_absolute_uri(
                    reverse("integrations:salesforce-callback")
                ),
            )
        except (LoginHostError, services.ConnectError) as exc:
            form.add_error("my_domain", str(exc))
        else:
            return redirect(url)
    return render(
        request,
        "integrations/connect.html",
        {"workspace": workspace, "form": form, "reconnecting": reconnecting},
    )


@login_required
@_members_only
def salesforce_callback(request: HttpRequest) -> HttpResponse:
    try:
        connection, outcome = services.authorization_complete(
            user=request.user,
            state=request.GET.get("state", ""),
            code=request.GET.get("code", ""),
            error=request.GET.get("error", ""),
            error_description=request.GET.get("error_description", ""),
        )
    except services.ConnectError as exc:
        # Denying is the customer's choice, not a bad request.
        status = 200 if isinstance(exc, services.ConnectDenied) else 400
        return render(
            request,
            "integrations/connect_failed.html",
            {"reason": str(exc)},
            status=status,
        )
    if outcome == services.CONNECTED_NEW:
        messages.success(request, "Salesforce is connected.")
    elif outcome == services.RECONNECTED:
        messages.success(request, f"{connection} is reconnected.")
    else:
        # Each approval is a grant of its own, and Salesforce keeps five per
        # user and app: connecting an org again evicts older ones unseen.
        # https://help.salesforce.com/apex/HTViewSolution?id=000205876&language=en_US
        messages.warning(
            request,
            f"{connection} was already connected here: its connection was "
            "updated, and keeps what it imported. Salesforce keeps five "
            "approvals of Trig per Salesforce user and revokes the oldest "
            "without notice, so connect each org once, with a user no other "
            "Trig connection uses.",
        )
    return redirect("integrations:connection-detail", pk=connection.pk)


@login_required
@_members_only
def connection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    workspace = _workspace_or_404(request)
    connection = selectors.connection_get(workspace=workspace, pk=pk)
    if connection is None:
        raise Http404("No such connection.")
    return render(
        request,
        "integrations/connection_detail.html",
        {
            "workspace": workspace,
            "connection": connection,
            "runs": selectors.sync_run_recent(connection=connection),
            "imported": selectors.object_mapping_stamps(connection=connection),
        },
    )


@login_required
@require_POST
@_members_only
def connection_sync_now(request: HttpRequest, pk: int) -> HttpResponse:
    workspace = _workspace_or_404(request)
    connection = selectors.connection_get(workspace=workspace, pk=pk)
    if connection is None:
        raise Http404("No such connection.")
    if not connection.is_usable:
        messages.error(request, "Reconnect the org before syncing it.")
    elif services.connection_sync_request(connection=connection):
        messages.success(request, "A full sync has been requested.")
    else:
        messages.info(
            request,
            "A sync asked for earlier has not finished yet, so no other was "
            "queued. Ask again once it has.",
        )
    return redirect("integrations:connection-detail", pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
@_members_only
def connection_disconnect(request: HttpRequest, pk: int) -> HttpResponse:
    """Say what disconnecting does and ask to confirm (GET); do it (POST)."""
    workspace = _workspace_or_404(request)
    connection = selectors.connection_get(workspace=workspace, pk=pk)
    if connection is None:
        raise Http404("No such connection.")
    if request.method == "GET":
        return render(
            request,
            "integrations/disconnect_confirm.html",
            {"workspace": workspace, "connection": connection},
        )

    # The CRM list it lands on may hold several orgs: say which one this was.
    if services.connection_disconnect(connection=connection):
        messages.success(
            request,
            f"{connection} is disconnected and Trig's access to it revoked. "
            "Imported data is kept.",
        )
    else:
        messages.warning(
            request,
            f"{connection} is disconnected and Trig no longer holds its tokens, "
            "but Salesforce could not be reached to revoke Trig's access. Remove "
            "it in Salesforce under Setup → Connected Apps OAuth Usage. Imported "
            "data is kept.",
        )
    return redirect("integrations:crm-settings")
