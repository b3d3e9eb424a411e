"""spvhub invitations service: Invitations of client companies by accounting firms (token hashes, status, 15-day expiry)."""
