import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from integrations.models import SalesforceConnection, SyncRun
from integrations.sync.run import SyncAlreadyRunning, connection_sync


class Command(BaseCommand):
    help = "Sync one Salesforce connection now and print a summary."

    def add_arguments(self, parser) -> None:
        parser.add_argument("connection_id", type=int)
        parser.add_argument(
            "--full",
            action="store_true",
            help="Read every record, not only those changed since the last sync.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Records per page asked of Salesforce (200-2000).",
        )

    def handle(
        self, *args, connection_id: int, full: bool, batch_size: int | None, **options
    ):
        connection = SalesforceConnection.objects.filter(pk=connection_id).first()
        if connection is None:
            raise CommandError(f"No Salesforce connection with id {connection_id}.")
        has_cursor = connection.sync_cursors.exists()
        kind = SyncRun.Kind.FULL if full or not has_cursor else SyncRun.Kind.RECENT

        bar = tqdm(
            desc="Reading",
            unit=" records",
            disable=not sys.stderr.isatty(),
            file=sys.stderr,
            dynamic_ncols=True,
        )

        def on_page(object_name: str, count: int) -> None:
            bar.set_postfix_str(object_name, refresh=False)
            bar.update(count)

        try:
            run = connection_sync(
                connection=connection,
                kind=kind,
                trigger=SyncRun.Trigger.MANUAL,
                batch_size=batch_size,
                on_page=on_page,
            )
        except SyncAlreadyRunning as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()

        summary = (
            f"{run.get_kind_display()} sync {run.get_status_display().lower()}: "
            f"{run.records_fetched} fetched, {run.records_created} created, "
            f"{run.records_updated} updated, {run.records_unchanged} unchanged, "
            f"{run.records_failed} failed, {run.problem_count} "
            f"note{'' if run.problem_count == 1 else 's'}, {run.signals_raised} "
            f"signal{'' if run.signals_raised == 1 else 's'} raised, "
            f"{run.api_calls} API call{'' if run.api_calls == 1 else 's'}"
        )
        self.stdout.write(summary)
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(run.error_message or "The sync failed.")
