import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

OFFLINE_ORG_PORT = 8443


class Command(BaseCommand):
    help = (
        "Run the offline Salesforce org, the web server and one Celery worker "
        "with embedded beat, until Ctrl-C."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, port: int, **options) -> None:
        python = sys.executable
        # The org's grants outlive a restart, so connections made before it
        # go on syncing; its records start again from the sample data.
        grants = Path(settings.VAR_DIR) / "offline_org" / "grants.json"
        commands = {
            "offline org": [
                python,
                "manage.py",
                "offline_org",
                "serve",
                "--port",
                str(OFFLINE_ORG_PORT),
                "--grants-file",
                str(grants),
            ],
            "web": [
                python,
                "manage.py",
                "runserver",
                f"127.0.0.1:{port}",
                "--noreload",
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "trig_crm",
                "worker",
                "--beat",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
            ],
        }
        processes: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_args) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            for name, command in commands.items():
                # Their own session, so that Ctrl-C reaches only us and we
                # stop them in order.
                processes[name] = subprocess.Popen(command, start_new_session=True)
                self.stdout.write(f"Started {name} (pid {processes[name].pid})")
            self.stdout.write(
                f"Trig is running at http://127.0.0.1:{port}/ and the offline "
                f"Salesforce org at https://127.0.0.1:{OFFLINE_ORG_PORT}/. "
                "Press Ctrl-C to stop."
            )
            while not stopping:
                for name, process in processes.items():
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with {process.returncode}")
                        stopping = True
                time.sleep(0.5)
        finally:
            self._stop_all(processes)

    def _stop_all(self, processes: dict[str, subprocess.Popen]) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 15
        for name, process in processes.items():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            self.stdout.write(f"Stopped {name}")
