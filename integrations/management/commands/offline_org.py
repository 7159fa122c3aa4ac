"""Run the offline Salesforce org, or connect a workspace to it from a script."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.generate import parse_spec
from integrations.salesforce.emulator.server import DEFAULT_HOST, DEFAULT_PORT, serve


class Command(BaseCommand):
    help = "Work with the offline Salesforce org."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        self._add_serve(actions)
        self._add_connect(actions)

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        handlers = {"serve": self._serve, "connect": self._connect}
        handlers[action](**options)

    # ------------------------------------------------------------ serve

    def _add_serve(self, actions: argparse._SubParsersAction) -> None:
        parser = actions.add_parser(
            "serve", help="Serve the sample org over HTTPS on 127.0.0.1."
        )
        parser.add_argument("--port", type=int, default=DEFAULT_PORT)
        parser.add_argument(
            "--request-log",
            type=Path,
            default=None,
            help="Append one JSON line per request served to this file.",
        )
        parser.add_argument(
            "--cert-dir",
            type=Path,
            default=None,
            help="Where the CA and server certificate live (made if missing); "
            "default: VAR_DIR/offline_org.",
        )
        parser.add_argument(
            "--generate",
            type=_generate_spec,
            default=None,
            metavar="contacts=N[,accounts=N,opportunities=N]",
            help="Add a generated org: Contacts, with about one Account per 10 "
            "and one Opportunity per 20 unless given.",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=1,
            help="The same seed generates the same org (default 1).",
        )
        parser.add_argument(
            "--grants-file",
            type=Path,
            default=None,
            help="Keep the OAuth grants here, so that refresh tokens the org "
            "issued still work after it restarts.",
        )
        parser.add_argument(
            "--no-sample",
            action="store_true",
            help="Leave out the sample org's records (its users stay).",
        )

    def _serve(
        self,
        *,
        port: int,
        request_log: Path | None,
        cert_dir: Path | None,
        generate: dict[str, int] | None,
        seed: int,
        no_sample: bool,
        grants_file: Path | None,
        **options: Any,
    ) -> None:
        cert_dir = cert_dir or Path(settings.VAR_DIR) / "offline_org"
        started = time.monotonic()
        try:
            org = OfflineOrg(
                generate=generate,
                seed=seed,
                load_sample=not no_sample,
                grants_path=grants_file,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if generate:
            counts = ", ".join(
                f"{org.store.count(name)} {name}"
                for name in ("Account", "Contact", "Opportunity")
            )
            elapsed = time.monotonic() - started
            self.stdout.write(f"Generated {counts} in {elapsed:.1f} s (seed {seed}).")
        self.stdout.write(
            f"Offline org at https://{DEFAULT_HOST}:{port} "
            f"(trust {cert_dir / 'ca.pem'}); Ctrl-C stops it."
        )
        serve(org, cert_dir=cert_dir, port=port, request_log=request_log)

    # ------------------------------------------------------------ connect

    def _add_connect(self, actions: argparse._SubParsersAction) -> None:
        parser = actions.add_parser(
            "connect",
            help="Connect a workspace to a running offline org through its OAuth "
            "pages, as a browser would, and print the connection id.",
        )
        parser.add_argument("--workspace", required=True, help="The workspace's slug.")
        parser.add_argument(
            "--host",
            default=None,
            help="The offline org's host:port; default: the first of "
            "SALESFORCE_EXTRA_LOGIN_HOSTS.",
        )
        parser.add_argument(
            "--user",
            default=None,
            help="E-mail of the member who connects; default: the workspace's "
            "first member.",
        )

    def _connect(
        self, *, workspace: str, host: str | None, user: str | None, **options: Any
    ) -> None:
        from integrations.offline_org import offline_org_connect
        from integrations.salesforce.oauth import LoginHostError
        from integrations.services import ConnectError
        from trig_crm.models import Membership, Workspace

        found = Workspace.objects.filter(slug=workspace).first()
        if found is None:
            raise CommandError(f"No workspace with slug {workspace!r}.")
        members = Membership.objects.filter(workspace=found).order_by("created_at")
        if user:
            members = members.filter(user__email__iexact=user)
        membership = members.select_related("user").first()
        if membership is None:
            raise CommandError(f"Workspace {workspace!r} has no such member.")
        hosts = settings.SALESFORCE_EXTRA_LOGIN_HOSTS
        if not host and not hosts:
            raise CommandError("No offline org host: pass --host.")

        try:
            connection = offline_org_connect(
                workspace=found, user=membership.user, login_host=host or hosts[0]
            )
        except LoginHostError as exc:
            raise CommandError(
                f"{exc} Add it to SALESFORCE_EXTRA_LOGIN_HOSTS to use an offline "
                "org there."
            ) from exc
        except ConnectError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(str(connection.pk))


def _generate_spec(text: str) -> dict[str, int]:
    try:
        return parse_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
