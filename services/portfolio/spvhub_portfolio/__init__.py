"""spvhub portfolio service: companies, memberships, the accounting-firm flag, discovered SPV rights,
collaborations and access scoping."""
