-- docker-compose: one database per service (what ./dev's services create on first migrate) plus the shared
-- ANAF budget database. Runs once, on an empty data volume.
CREATE DATABASE spvhub_auth;
CREATE DATABASE spvhub_portfolio;
CREATE DATABASE spvhub_invitations;
CREATE DATABASE spvhub_efactura;
CREATE DATABASE spvhub_etransport;
CREATE DATABASE spvhub_notifier;
CREATE DATABASE spvhub_webhooks;
CREATE DATABASE spvhub_anaf_budget;
