import io
import json
import threading

import requests
from django.core.management import call_command

from integrations.salesforce.emulator import OfflineOrg
from integrations.salesforce.emulator.server import make_server
from integrations.salesforce.emulator.tls import ensure_certificates


def test_it_makes_certificates_once_and_reuses_them(tmp_path):
    first = ensure_certificates(tmp_path)
    contents = first.ca.read_bytes(), first.certificate.read_bytes()

    second = ensure_certificates(tmp_path)

    assert (second.ca.read_bytes(), second.certificate.read_bytes()) == contents
    assert oct(first.key.stat().st_mode)[-3:] == "600"


def test_it_serves_over_https_with_a_request_log(tmp_path):
    org = OfflineOrg()
    log = io.StringIO()
    server = make_server(org, cert_dir=tmp_path, port=0, request_log=log)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Passed with each request: REQUESTS_CA_BUNDLE would override session.verify.
    ca = str(tmp_path / "ca.pem")
    session = requests.Session()
    token = org.issue_tokens().access_token

    try:
        for host in ("127.0.0.1", "localhost"):
            base = f"https://{host}:{server.server_port}"
            versions = session.get(f"{base}/services/data/", timeout=5, verify=ca)
            assert versions.status_code == 200
        answer = session.get(
            f"{base}/services/data/v62.0/query/",
            params={"q": "SELECT Id FROM Contact"},
            headers={
                "Authorization": f"Bearer {token}",
                "Sforce-Query-Options": "batchSize=200",
            },
            timeout=5,
            verify=ca,
        )
    finally:
        server.shutdown()
        thread.join()

    assert answer.json()["nextRecordsUrl"].startswith("/services/data/v62.0/query/")
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [line["status"] for line in lines] == [200, 200, 200]
    assert lines[-1]["method"] == "GET"
    assert lines[-1]["path"] == "/services/data/v62.0/query/"
    assert set(lines[-1]) == {"time", "method", "path", "status"}


def test_it_serves_from_the_management_command(tmp_path, settings, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "integrations.management.commands.offline_org.serve",
        lambda org, **options: calls.append((org, options)),
    )
    settings.VAR_DIR = tmp_path

    call_command("offline_org", "serve", "--port", "9443", stdout=io.StringIO())

    org, options = calls[0]
    assert isinstance(org, OfflineOrg)
    assert options == {
        "cert_dir": tmp_path / "offline_org",
        "port": 9443,
        "request_log": None,
    }
