"""spvhub auth service: Platform accounts, API credentials, JWT signing keys and ANAF connections (tokens encrypted at rest)."""
