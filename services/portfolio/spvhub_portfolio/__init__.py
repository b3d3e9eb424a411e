"""spvhub portfolio service: Companies, memberships, the accounting-firm flag, discovered SPV rights, collaborations and access scoping."""
