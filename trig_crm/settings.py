"""Settings for the Trig CRM service, read from the environment alone.

`DJANGO_ENV=local` (the default) gives working defaults for every setting, the
offline Salesforce org included. `DJANGO_ENV=production` refuses to start until
the real secrets are set.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# ---------------------------------------------------------------- Environment

DJANGO_ENV = env.str("DJANGO_ENV", default="local")
IS_LOCAL = DJANGO_ENV == "local"
if DJANGO_ENV not in {"local", "production"}:
    raise environ.ImproperlyConfigured("DJANGO_ENV must be 'local' or 'production'")

# Everything the service writes at run time locally: database, broker folders,
# the offline org's certificates.
VAR_DIR = Path(env.str("TRIG_VAR_DIR", default=str(BASE_DIR / "var")))
if IS_LOCAL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=IS_LOCAL)

# Local development gets fixed, obviously fake secrets; production must set them.
_LOCAL_SECRET = "local-only-secret-key-never-use-in-production-0123456789"
_LOCAL_TOKEN_KEY = "bG9jYWwtb25seS10b2tlbi1rZXktMzItYnl0ZXMhISE="
SECRET_KEY = (
    env.str("SECRET_KEY", default=_LOCAL_SECRET) if IS_LOCAL else env.str("SECRET_KEY")
)

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Base URL of this service, for links built outside a request (the OAuth
# callback when a script connects an org).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# ---------------------------------------------------------------- HTTPS

# In production the session and CSRF cookies travel over HTTPS only. Behind
# a proxy that ends TLS, set SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO
# so that Django sees such requests as HTTPS: the OAuth callback URL sent to
# Salesforce is built from the request and must be the https:// one the
# Connected App lists.
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/#https
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not IS_LOCAL)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not IS_LOCAL)
_PROXY_SSL_HEADER = env.str("SECURE_PROXY_SSL_HEADER", default="")
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = (_PROXY_SSL_HEADER, "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)

# ---------------------------------------------------------------- Applications

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "django_celery_beat",
    "trig_crm",
    "people",
    "integrations",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "trig_crm.urls"
WSGI_APPLICATION = "trig_crm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------- Database

# SQLite shared by the web server, the worker and beat needs WAL and IMMEDIATE
# transactions, or concurrent writers fail with "database is locked".
# https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'trig_crm.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------- Accounts

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="none")
LOGIN_REDIRECT_URL = "integrations:crm-settings"
LOGIN_URL = "account_login"

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="trig@localhost")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# ---------------------------------------------------------------- Locale and static

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# ---------------------------------------------------------------- Celery

# `filesystem://` needs no server: good for one machine. Production sets
# CELERY_BROKER_URL to Redis (redis://...) or RabbitMQ (amqp://...).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "salesforce-sync-due-connections": {
        "task": "integrations.sync_due_connections",
        "schedule": env.float("SALESFORCE_SCHEDULE_TICK_SECONDS", default=60.0),
    },
}
CELERY_TIMEZONE = TIME_ZONE

# ---------------------------------------------------------------- Salesforce

# Trig's Connected App. Locally the offline org accepts these fixed values.
if IS_LOCAL:
    SALESFORCE_CLIENT_ID = env.str(
        "SALESFORCE_CLIENT_ID", default="trig-offline-client"
    )
    SALESFORCE_CLIENT_SECRET = env.str(
        "SALESFORCE_CLIENT_SECRET", default="trig-offline-secret"
    )
else:
    SALESFORCE_CLIENT_ID = env.str("SALESFORCE_CLIENT_ID")
    SALESFORCE_CLIENT_SECRET = env.str("SALESFORCE_CLIENT_SECRET")

# Pinned so that what we test is what we call; versions 21-30 are retired.
# https://help.salesforce.com/s/articleView?id=000381744&type=1
SALESFORCE_API_VERSION = env.str("SALESFORCE_API_VERSION", default="62.0")

# Login hosts accepted besides Salesforce's own domains: the offline org.
SALESFORCE_EXTRA_LOGIN_HOSTS = env.list(
    "SALESFORCE_EXTRA_LOGIN_HOSTS", default=["127.0.0.1:8443"] if IS_LOCAL else []
)
# A CA bundle to trust for Salesforce calls, in place of the system's: the
# offline org's own CA. Empty means the system's trust store.
SALESFORCE_CA_BUNDLE = env.str(
    "SALESFORCE_CA_BUNDLE",
    default=str(VAR_DIR / "offline_org" / "ca.pem") if IS_LOCAL else "",
)
SALESFORCE_TIMEOUT_SECONDS = env.float("SALESFORCE_TIMEOUT_SECONDS", default=60.0)
# Retries of a connection that could not be made; every other failure is
# tried again by the client, SALESFORCE_TRANSIENT_ATTEMPTS times in all.
SALESFORCE_HTTP_RETRIES = env.int("SALESFORCE_HTTP_RETRIES", default=3)
SALESFORCE_HTTP_BACKOFF_SECONDS = env.float(
    "SALESFORCE_HTTP_BACKOFF_SECONDS", default=1.0
)
# Bytes a query's URL-encoded statement may take in a request line. Salesforce
# refuses a request line plus headers over 16,384 bytes; statements longer
# than this budget are split.
SALESFORCE_QUERY_URL_BUDGET = env.int("SALESFORCE_QUERY_URL_BUDGET", default=8000)
# Tries of a read that meets a passing failure (a row lock, an outage, too
# many long requests at once), with growing waits between them.
SALESFORCE_TRANSIENT_ATTEMPTS = env.int("SALESFORCE_TRANSIENT_ATTEMPTS", default=4)
# The first wait after Salesforce refuses a call for too many long requests
# at once, doubled at each try: those requests take seconds to minutes to end.
SALESFORCE_BUSY_BACKOFF_SECONDS = env.float(
    "SALESFORCE_BUSY_BACKOFF_SECONDS", default=10.0
)
# One run may spend this share of the org's daily API allocation; all syncs
# pause while the org as a whole has used more than the second share.
SALESFORCE_RUN_BUDGET_PERCENT = env.int("SALESFORCE_RUN_BUDGET_PERCENT", default=10)
SALESFORCE_PAUSE_ABOVE_PERCENT = env.int("SALESFORCE_PAUSE_ABOVE_PERCENT", default=80)
# Minutes during which the org's usage, as last seen, is trusted: a sync
# that starts while it shows no room left calls nothing and says so.
SALESFORCE_USAGE_TRUSTED_MINUTES = env.int(
    "SALESFORCE_USAGE_TRUSTED_MINUTES", default=60
)
# Minutes an access token is taken to live; Salesforce's default session
# timeout is two hours. Older tokens are refreshed before they are used.
SALESFORCE_SESSION_MINUTES = env.int("SALESFORCE_SESSION_MINUTES", default=110)
SALESFORCE_FULL_SYNC_HOURS = env.int("SALESFORCE_FULL_SYNC_HOURS", default=24)
# A sync claim older than this is taken to belong to a worker that died.
SALESFORCE_SYNC_CLAIM_TIMEOUT_SECONDS = env.int(
    "SALESFORCE_SYNC_CLAIM_TIMEOUT_SECONDS", default=3 * 60 * 60
)

# Fernet keys for tokens at rest, comma-separated, newest first; older keys
# still decrypt, which lets a key be rotated without reconnecting every org.
TOKEN_ENCRYPTION_KEYS = (
    env.list("TOKEN_ENCRYPTION_KEYS", default=[_LOCAL_TOKEN_KEY])
    if IS_LOCAL
    else env.list("TOKEN_ENCRYPTION_KEYS")
)

# ---------------------------------------------------------------- Jobs (writeback)

# Share of an org's daily API allocation that Jobs' writes may spend in any
# 24 hours; syncs stop short of it, so neither starves the other.
SALESFORCE_WRITE_SHARE_PERCENT = env.int("SALESFORCE_WRITE_SHARE_PERCENT", default=10)
# Records per sObject Collections update; Salesforce takes at most 200.
JOBS_WRITE_BATCH_SIZE = env.int("JOBS_WRITE_BATCH_SIZE", default=200)
# Sends of a record within one run while Salesforce answers with a passing
# error (a row lock, an outage), waiting BACKOFF, then twice as long, ...
JOBS_WRITE_ATTEMPTS_PER_RUN = env.int("JOBS_WRITE_ATTEMPTS_PER_RUN", default=3)
JOBS_WRITE_BACKOFF_SECONDS = env.float("JOBS_WRITE_BACKOFF_SECONDS", default=2.0)
# A record still failing waits this long for a later run, twice as long
# after each run; after MAX_ATTEMPTS sends it is given up.
JOBS_WRITE_RETRY_SECONDS = env.int("JOBS_WRITE_RETRY_SECONDS", default=300)
JOBS_WRITE_MAX_ATTEMPTS = env.int("JOBS_WRITE_MAX_ATTEMPTS", default=12)
# Events arriving within this many seconds share one run and its batches.
JOBS_WRITE_DELAY_SECONDS = env.int("JOBS_WRITE_DELAY_SECONDS", default=10)
# How long writes wait when their share of the API allocation is spent.
JOBS_BUDGET_WAIT_SECONDS = env.int("JOBS_BUDGET_WAIT_SECONDS", default=15 * 60)
# A run waits this long for another run of its connection to end.
JOBS_BUSY_RETRY_SECONDS = env.int("JOBS_BUSY_RETRY_SECONDS", default=30)
# A running run older than this belongs to a worker that died.
JOBS_RUN_TIMEOUT_SECONDS = env.int("JOBS_RUN_TIMEOUT_SECONDS", default=60 * 60)
JOBS_EVENTS_PER_REQUEST = env.int("JOBS_EVENTS_PER_REQUEST", default=500)
CELERY_BEAT_SCHEDULE["jobs-write-due-connections"] = {
    "task": "jobs.write_due_connections",
    "schedule": env.float("JOBS_WRITE_TICK_SECONDS", default=60.0),
}

# ---------------------------------------------------------------- Logging

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own handlers would print each of its records a second time.
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
