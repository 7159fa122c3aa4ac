"""The offline org: a Salesforce-compatible server loaded with a sample org.

See `app.OfflineOrg` for the org itself, `testing` to reach it from
`requests` in tests, `server.serve` to run it over HTTPS, `faults` for the
failures tests can switch on, and `generate` for large orgs to benchmark
against.
"""

from integrations.salesforce.emulator.app import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    OfflineOrg,
)

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "OfflineOrg"]
