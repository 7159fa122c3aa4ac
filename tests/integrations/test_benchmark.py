"""The benchmark runs end to end on a small org and reports every figure."""

import json

from django.core.management import call_command


def test_the_benchmark_prints_and_writes_its_figures(tmp_path, capsys):
    # Each step runs in a child process with a throwaway SQLite file.
    out = tmp_path / "bench.json"

    call_command("benchmark_sync", sizes="200", json_path=str(out))

    figures = json.loads(out.read_text())["200"]
    full = figures["full"]
    # 200 Contacts, 20 Accounts, 10 Opportunities, the Users and Leads.
    assert full["records"] >= 230
    assert full["api_calls"] >= 1 and full["rest_query_calls"] == full["rest_floor"]
    assert figures["naive"]["records"] == 200
    assert figures["write_floor"]["records"] == 200
    assert figures["recent_1pct"]["rows_written"] == 2
    assert figures["no_change"] == {"api_calls": 1, "rows_written": 0, "objects": 5}
    table = capsys.readouterr().out
    assert "floor rec/s" in table and "200" in table
