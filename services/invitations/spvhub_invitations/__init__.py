"""spvhub invitations service: invitations of client companies by accounting firms (token hashes, status,
15-day expiry)."""
