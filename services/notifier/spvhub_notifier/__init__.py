"""spvhub notifier service: In-app notification inbox, e-mail outbox and delivery log, per-user preferences."""
