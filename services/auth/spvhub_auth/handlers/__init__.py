"""Use cases of the auth service, one module per section:

- `accounts`: platform accounts and sessions (sign-up, login, refresh, logout, profile);
- `account_lifecycle`: e-mail verification and change, password reset and change, the sessions list;
- `connections`: the ANAF OAuth authorization, the connections a person sees, revocation;
- `delegations`: links that let another person authorize a company with their certificate;
- `renewal`: renewal of ANAF tokens, warnings before the date a person must act, re-authorization;
- `tokens`: current ANAF access tokens for the other services (internal);
- `api_keys`: API keys for machine clients and their introspection by the other services;
- `throttle`: the counters that slow down the unauthenticated entry points.

Every command runs in one unit of work; events leave through the outbox in the same transaction. SQL lives in
`spvhub_auth.adapters.repository`.
"""
from __future__ import annotations

from spvhub_common.events import Event
from spvhub_common.events.portfolio import CompanyRegistered
from spvhub_common.runtime import EventHandler

from spvhub_auth.handlers.account_lifecycle import (
    change_email,
    change_password,
    forgot_password,
    link_for,
    list_sessions,
    request_link,
    resend_verification,
    reset_password,
    revoke_session,
    verify_email,
)
from spvhub_auth.handlers.accounts import (
    get_profile,
    log_in,
    log_out,
    refresh_session,
    sign_up,
    signing_keys,
    update_profile,
)
from spvhub_auth.handlers.api_keys import create_key, introspect, key_usage, list_keys, purge_usage, revoke_key
from spvhub_auth.handlers.connections import (
    complete_authorization,
    connection_view,
    get_connection,
    list_connections,
    on_company_registered,
    revoke_connection,
    start_authorization,
)
from spvhub_auth.handlers.delegations import create_delegation, list_delegations, open_delegation, revoke_delegation
from spvhub_auth.handlers.deps import Deps
from spvhub_auth.handlers.housekeeping import purge_old_records
from spvhub_auth.handlers.renewal import (
    MUST_ACT_DAYS,
    export_deadline_metrics,
    renew_connection,
    renew_due,
    run_lifecycle,
    send_warnings,
)
from spvhub_auth.handlers.tokens import access_token_for, access_token_for_cif, refresh_for_caller, token_grants

# Besides the access changes the runtime's shared access read model keeps (see consumers.register), auth reads a
# natural person's registration: the CNP, sealed, that ANAF names the person by.
EVENT_HANDLERS: dict[type[Event], EventHandler] = {CompanyRegistered: on_company_registered}

__all__ = [
    "EVENT_HANDLERS", "MUST_ACT_DAYS", "access_token_for", "access_token_for_cif", "change_email", "change_password",
    "complete_authorization", "connection_view", "create_delegation", "create_key", "Deps", "export_deadline_metrics",
    "forgot_password", "get_connection", "get_profile", "introspect", "key_usage", "link_for", "list_connections",
    "list_delegations", "list_keys", "list_sessions", "log_in", "log_out", "on_company_registered", "open_delegation",
    "purge_old_records", "purge_usage", "refresh_for_caller", "refresh_session", "renew_connection", "renew_due",
    "request_link", "resend_verification", "reset_password", "revoke_connection", "revoke_delegation", "revoke_key",
    "revoke_session", "run_lifecycle", "send_warnings", "sign_up", "signing_keys", "start_authorization",
    "token_grants", "update_profile", "verify_email",
]
