import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from django.core.management.utils import get_random_secret_key

ROOT = Path(__file__).resolve().parents[2]


def test_production_sends_the_session_and_csrf_cookies_over_https_only(tmp_path):
    environment = {
        **os.environ,
        "DJANGO_ENV": "production",
        "SECRET_KEY": get_random_secret_key() * 2,
        "SALESFORCE_CLIENT_ID": "client",
        "SALESFORCE_CLIENT_SECRET": "secret",
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "TRIG_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }

    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )

    assert checked.returncode == 0, checked.stderr
    assert "security.W012" not in checked.stderr  # SESSION_COOKIE_SECURE
    assert "security.W016" not in checked.stderr  # CSRF_COOKIE_SECURE
