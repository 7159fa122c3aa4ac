"""Serve an offline org over HTTPS on this machine.

The public URL in token answers, identity URLs and `nextRecordsUrl` comes
from the Host each request names, so the org answers correctly at
https://127.0.0.1:PORT and https://localhost:PORT alike.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler
from werkzeug.serving import make_server as make_wsgi_server

from integrations.salesforce.emulator.app import OfflineOrg
from integrations.salesforce.emulator.tls import ensure_certificates

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443


class _QuietRequestHandler(WSGIRequestHandler):
    # werkzeug would log each request line, query string and all, and a
    # query string can hold a token; RequestLog writes what is safe.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class RequestLog:
    """A WSGI middleware writing one JSON line per request served."""

    def __init__(self, app: Callable, stream: TextIO) -> None:
        self.app = app
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable:
        seen: dict[str, int] = {}

        def recording_start_response(status: str, headers: list, *args: Any) -> Any:
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, *args)

        result = self.app(environ, recording_start_response)
        line = json.dumps(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "status": seen.get("status"),
            }
        )
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
        return result


def make_server(
    org: OfflineOrg,
    *,
    cert_dir: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    request_log: TextIO | None = None,
) -> BaseWSGIServer:
    """Return a threaded HTTPS server for `org`; port 0 picks a free port."""
    paths = ensure_certificates(cert_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths.certificate, paths.key)
    app: Callable = org if request_log is None else RequestLog(org, request_log)
    return make_wsgi_server(
        host,
        port,
        app,
        threaded=True,
        request_handler=_QuietRequestHandler,
        ssl_context=context,
    )


def serve(
    org: OfflineOrg,
    *,
    cert_dir: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    request_log: Path | None = None,
) -> None:
    """Serve `org` until interrupted, logging requests to a file if asked."""
    stream = None if request_log is None else request_log.open("a", encoding="utf-8")
    try:
        server = make_server(
            org, cert_dir=cert_dir, host=host, port=port, request_log=stream
        )
        server.serve_forever()
    finally:
        if stream is not None:
            stream.close()
