"""Tables of the auth service (SQLAlchemy Core); the Alembic history in migrations/ follows this file."""
from __future__ import annotations

from spvhub_common.access import access_table
from spvhub_common.messaging import add_messaging_tables
from sqlalchemy import (
                        BigInteger,
                        Boolean,
                        Column,
                        DateTime,
                        Index,
                        Integer,
                        LargeBinary,
                        MetaData,
                        String,
                        Table,
                        Text,
                        func,
                        text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
access_grants = access_table(metadata)

users = Table(
    "users", metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # stored lower-case
    Column("name", String(200), nullable=False),
    Column("locale", String(8), nullable=False, server_default="ro"),
    Column("password_hash", Text, nullable=False),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", DateTime(timezone=True)),
    Column("email_verified_at", DateTime(timezone=True)),  # null until the address is confirmed from its link
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Single-use links e-mailed to a person (verify an address, confirm a new one, reset a password). The token is
# stored nowhere: it is HMAC(key, "<id>:<nonce>") with a key derived from the token key spec, so the notifier can
# fetch the link from the internal endpoint when it sends the e-mail, and a database dump alone opens nothing.
# `token_hash` (SHA-256 of the token) finds the row when the link comes back.
account_tokens = Table(
    "account_tokens", metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("purpose", String(32), nullable=False),   # verify_email | change_email | reset_password
    Column("email", String(320), nullable=False),    # the address the link was sent to
    Column("nonce", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),  # a newer link of the same purpose, or the account changed
)

login_throttle = Table(
    "login_throttle", metadata,
    Column("key", String(200), primary_key=True),  # "ip:<address>"
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("failures", Integer, nullable=False),
)

refresh_tokens = Table(
    "refresh_tokens", metadata,
    Column("id", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False, index=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("user_agent", String(300)),      # of the request that issued this token (the session's latest use)
    Column("client_address", String(100)),
)

signing_keys = Table(
    "signing_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_key_enc", LargeBinary, nullable=False),  # PEM, SecretBox-encrypted
    Column("public_jwk", JSONB, nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),
)

anaf_connections = Table(
    "anaf_connections", metadata,
    Column("id", String(64), primary_key=True),
    Column("company_cif", String(16), nullable=False, index=True),
    Column("user_id", String(64), nullable=False),          # the platform user the authorization belongs to
    Column("holder_name", String(200), nullable=False),     # the person who authorized with their certificate
    Column("certificate_serial", String(200), nullable=False),
    Column("services", JSONB, nullable=False),
    Column("state", String(32), nullable=False),  # active|renewing|expiring|reauthorization_required|revoked
    Column("state_before_renewal", String(32)),
    Column("delegation_id", String(64)),
    Column("authorized_at", DateTime(timezone=True), nullable=False),
    Column("access_issued_at", DateTime(timezone=True), nullable=False),
    Column("access_expires_at", DateTime(timezone=True), nullable=False),
    Column("refresh_expires_at", DateTime(timezone=True), nullable=False),
    Column("family_expires_at", DateTime(timezone=True)),
    Column("must_act_by", DateTime(timezone=True), nullable=False),
    Column("next_renewal_at", DateTime(timezone=True), nullable=False),
    Column("last_refreshed_at", DateTime(timezone=True)),
    Column("access_token_enc", LargeBinary),   # SecretBox, aad = "anaf:<id>:access"
    Column("refresh_token_enc", LargeBinary),  # SecretBox, aad = "anaf:<id>:refresh"
    Column("lease_until", DateTime(timezone=True)),
    Column("renew_attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("warnings_sent", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("reauth_reason", String(32)),
    Column("reauth_message", Text),
    Column("revoked_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_anaf_connections_due", "state", "next_renewal_at"),
)

oauth_states = Table(
    "oauth_states", metadata,
    Column("id", String(64), primary_key=True),  # the nonce inside the signed state
    Column("user_id", String(64), nullable=False),
    Column("company_cif", String(16), nullable=False),
    Column("delegation_id", String(64)),
    Column("holder_name", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("outcome", String(32)),       # authorized | no_rights | anaf_error | exchange_failed
    Column("outcome_message", Text),
    Column("connection_id", String(64)),
)

# A natural person's CNP, sealed to its person key (spvhub_common.pii), as typed when an authorization or a
# delegation link was asked for by CNP: the rights check after ANAF's callback names the person by it. Never clear.
person_ids = Table(
    "person_ids", metadata,
    Column("person_key", String(16), primary_key=True),
    Column("cnp_sealed", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

delegation_links = Table(
    "delegation_links", metadata,
    Column("id", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the link token
    Column("company_cif", String(16), nullable=False, index=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("used_by_name", String(200)),
    Column("connection_id", String(64)),
    Column("revoked_at", DateTime(timezone=True)),
)

access_token_grants = Table(
    "access_token_grants", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("connection_id", String(64), nullable=False, index=True),
    Column("caller_service", String(100), nullable=False),
    Column("kind", String(16), nullable=False),  # access-token | refresh
    Column("outcome", String(32), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(64), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 of the whole key (a 256-bit secret)
    Column("prefix", String(24), nullable=False),                  # the key's first characters, to recognize it
    Column("name", String(200), nullable=False),
    Column("created_by", String(64), nullable=False, index=True),
    Column("companies", JSONB, nullable=False),    # ["CIF", ...]
    Column("permissions", JSONB, nullable=False),  # ["read", "sync", "file", "invitations"]
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", String(64)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("last_used_request_id", String(128)),
    Column("use_count", BigInteger, nullable=False, server_default="0"),
    Column("rate_window_start", DateTime(timezone=True)),
    Column("rate_count", Integer, nullable=False, server_default="0"),
)

api_key_usage = Table(
    "api_key_usage", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("key_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("service", String(100), nullable=False),
    Column("method", String(16), nullable=False),
    Column("path", String(1000), nullable=False),  # without the query string
    Column("request_id", String(128)),
    Column("client", String(64)),
    Column("outcome", String(32), nullable=False),  # ok | revoked | expired | rate_limited
    Index("ix_api_key_usage_key_at", "key_id", "at"),
)
