"""OAuth 2.0 for the offline org: one connected app, codes, grants, tokens.

Web-server flow with PKCE, refresh, revoke, and Bearer checks for the REST
API. Access tokens die after a time without use, like a Salesforce session;
a grant lives until it is revoked.

https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm&type=5
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from integrations.salesforce.emulator.errors import OAuthError

Clock = Callable[[], datetime]

DEFAULT_SCOPE = "api refresh_token"
# Authorization codes are good for 15 minutes.
CODE_LIFETIME = timedelta(minutes=15)
_REFRESH_SCOPES = {"refresh_token", "offline_access", "full"}


@dataclass
class Grant:
    grant_id: str
    user_id: str
    scope: str
    refresh_token: str | None
    # The host the grant was issued at ("" when issued without a request);
    # a refresh sent anywhere else is refused.
    issuer_host: str = ""
    is_revoked: bool = False


@dataclass
class AccessToken:
    user_id: str
    grant_id: str | None
    last_used_at: datetime
    is_expired: bool = False


@dataclass
class AuthorizationCode:
    user_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    issued_at: datetime


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None


@dataclass(frozen=True)
class ConnectedApp:
    client_id: str
    client_secret: str
    name: str
    # Callback URLs the app accepts; None accepts any, for local use.
    redirect_uris: tuple[str, ...] | None = None

    def allows_redirect(self, uri: str) -> bool:
        if not uri.startswith(("https://", "http://")):
            return False
        return self.redirect_uris is None or uri in self.redirect_uris


class AuthServer:
    def __init__(
        self,
        *,
        app: ConnectedApp,
        org_id: str,
        clock: Clock,
        lock: threading.RLock,
        session_timeout: timedelta | None,
        rotate_refresh_tokens: bool,
        grants_path: Path | None = None,
    ) -> None:
        self.app = app
        self.org_id = org_id
        self.clock = clock
        self.lock = lock
        self.session_timeout = session_timeout
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self._codes: dict[str, AuthorizationCode] = {}
        self._grants: dict[str, Grant] = {}
        self._grants_by_refresh: dict[str, str] = {}
        self._access: dict[str, AccessToken] = {}
        # Where grants outlive the process, when given: a served org that
        # restarts still knows the refresh tokens it issued, as Salesforce
        # does. Sessions and codes are not kept; a client refreshes.
        self.grants_path = grants_path
        if grants_path is not None:
            self._load_grants(grants_path)

    # ------------------------------------------------------------ Tokens

    def issue_code(
        self,
        *,
        user_id: str,
        redirect_uri: str,
        scope: str | None,
        code_challenge: str | None,
    ) -> str:
        with self.lock:
            code = "aPrx" + secrets.token_urlsafe(48)
            self._codes[code] = AuthorizationCode(
                user_id=user_id,
                redirect_uri=redirect_uri,
                scope=scope or DEFAULT_SCOPE,
                code_challenge=code_challenge,
                issued_at=self.clock(),
            )
            return code

    def redeem_code(
        self,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str | None,
        host: str = "",
    ) -> tuple[Grant, Tokens]:
        """Exchange a code for tokens; a code works once, good or bad."""
        with self.lock:
            issued = self._codes.pop(code, None)
            if issued is None or self.clock() - issued.issued_at > CODE_LIFETIME:
                raise OAuthError("invalid_grant", "invalid authorization code")
            if redirect_uri != issued.redirect_uri:
                raise OAuthError(
                    "redirect_uri_mismatch", "redirect_uri must match configuration"
                )
            if issued.code_challenge is not None and not _verifier_matches(
                code_verifier, issued.code_challenge
            ):
                raise OAuthError("invalid_grant", "invalid code verifier")
            return self._grant(
                user_id=issued.user_id, scope=issued.scope, issuer_host=host
            )

    def issue_tokens(self, *, user_id: str, scope: str = DEFAULT_SCOPE) -> Tokens:
        """Grant access as if the user had allowed it in the browser."""
        with self.lock:
            return self._grant(user_id=user_id, scope=scope)[1]

    def refresh(self, *, refresh_token: str, host: str = "") -> tuple[Grant, Tokens]:
        """Issue a new access token for a grant, at the host that issued it.

        Salesforce refuses a refresh sent to another login host (a generic
        host for a My Domain grant, production for a sandbox) as it refuses
        an unknown token.
        """
        with self.lock:
            grant = self._grants.get(self._grants_by_refresh.get(refresh_token, ""))
            if grant is None or grant.is_revoked:
                raise OAuthError("invalid_grant", "expired access/refresh token")
            if grant.issuer_host and host.lower() != grant.issuer_host:
                raise OAuthError("invalid_grant", "expired access/refresh token")

            rotated = None
            if self.rotate_refresh_tokens:
                del self._grants_by_refresh[refresh_token]
                rotated = self._new_refresh_token(grant)
                self._save_grants()
            access_token = self._new_access_token(grant.user_id, grant.grant_id)
            return grant, Tokens(access_token, rotated)

    def revoke(self, token: str) -> None:
        """Revoke a refresh token (with its sessions) or one access token."""
        with self.lock:
            if token in self._access:
                del self._access[token]
                return
            grant_id = self._grants_by_refresh.get(token)
            if grant_id is None:
                raise OAuthError(
                    "unsupported_token_type", "this token type is not supported"
                )
            self._revoke_grant(self._grants[grant_id])
            self._save_grants()

    def authenticate(self, token: str) -> str | None:
        """Return the user a Bearer token acts for, or None if it is dead."""
        with self.lock:
            access = self._access.get(token)
            if access is None or access.is_expired:
                return None
            now = self.clock()
            if (
                self.session_timeout is not None
                and now - access.last_used_at > self.session_timeout
            ):
                access.is_expired = True
                return None
            access.last_used_at = now
            return access.user_id

    def expire_access_tokens(self) -> None:
        """End every session, as an org's session timeout does."""
        with self.lock:
            for access in self._access.values():
                access.is_expired = True

    def revoke_grants(self) -> None:
        """Revoke every grant: refreshing then answers invalid_grant."""
        with self.lock:
            for grant in self._grants.values():
                self._revoke_grant(grant)
            self._save_grants()

    def signature(self, *, identity_url: str, issued_at: str) -> str:
        # https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_endpoints.htm&type=5
        digest = hmac.new(
            self.app.client_secret.encode(),
            (identity_url + issued_at).encode(),
            hashlib.sha256,
        ).digest()
        return base64.b64encode(digest).decode()

    # ------------------------------------------------------------ Helpers

    def _grant(
        self, *, user_id: str, scope: str, issuer_host: str = ""
    ) -> tuple[Grant, Tokens]:
        grant = Grant(
            grant_id=secrets.token_hex(8),
            user_id=user_id,
            scope=scope,
            refresh_token=None,
            issuer_host=issuer_host.lower(),
        )
        self._grants[grant.grant_id] = grant
        refresh_token = None
        if _REFRESH_SCOPES & set(scope.split()):
            refresh_token = self._new_refresh_token(grant)
        access_token = self._new_access_token(user_id, grant.grant_id)
        self._save_grants()
        return grant, Tokens(access_token, refresh_token)

    def _new_refresh_token(self, grant: Grant) -> str:
        token = "5Aep861" + secrets.token_urlsafe(64)
        grant.refresh_token = token
        self._grants_by_refresh[token] = grant.grant_id
        return token

    def _new_access_token(self, user_id: str, grant_id: str | None) -> str:
        token = f"{self.org_id[:15]}!AQ" + secrets.token_urlsafe(72)
        self._access[token] = AccessToken(user_id, grant_id, self.clock())
        return token

    def _revoke_grant(self, grant: Grant) -> None:
        grant.is_revoked = True
        for access in self._access.values():
            if access.grant_id == grant.grant_id:
                access.is_expired = True

    def _load_grants(self, path: Path) -> None:
        try:
            saved = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"The offline org's grants at {path} are unreadable: {exc}"
            ) from exc
        try:
            grants = [Grant(**fields) for fields in saved]
        except TypeError as exc:
            raise ValueError(
                f"The offline org's grants at {path} are not its own: {exc}"
            ) from exc
        for grant in grants:
            self._grants[grant.grant_id] = grant
            if grant.refresh_token:
                self._grants_by_refresh[grant.refresh_token] = grant.grant_id

    def _save_grants(self) -> None:
        """Write every grant to `grants_path`, whole or not at all."""
        if self.grants_path is None:
            return
        self.grants_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.grants_path.with_suffix(".tmp")
        # Refresh tokens: readable by the owner only.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump([dataclasses.asdict(g) for g in self._grants.values()], file)
        os.replace(partial, self.grants_path)


def _verifier_matches(verifier: str | None, challenge: str) -> bool:
    # PKCE S256: BASE64URL(SHA256(code_verifier)) without padding.
    # https://datatracker.ietf.org/doc/html/rfc7636#section-4.6
    if not verifier:
        return False
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(expected, challenge)
