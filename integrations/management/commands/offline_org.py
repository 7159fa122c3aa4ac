"""Run the offline Salesforce org: `manage.py offline_org serve`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.server import DEFAULT_HOST, DEFAULT_PORT, serve


class Command(BaseCommand):
    help = "Work with the offline Salesforce org."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        self._add_serve(actions)

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        handlers = {"serve": self._serve}
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

    def _serve(
        self,
        *,
        port: int,
        request_log: Path | None,
        cert_dir: Path | None,
        **options: Any,
    ) -> None:
        cert_dir = cert_dir or Path(settings.VAR_DIR) / "offline_org"
        org = OfflineOrg()
        self.stdout.write(
            f"Offline org at https://{DEFAULT_HOST}:{port} "
            f"(trust {cert_dir / 'ca.pem'}); Ctrl-C stops it."
        )
        serve(org, cert_dir=cert_dir, port=port, request_log=request_log)
