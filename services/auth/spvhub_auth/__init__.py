"""spvhub auth service: platform accounts, JWT signing keys (JWKS) and ANAF connections (tokens encrypted at rest)."""
