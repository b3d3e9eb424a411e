"""spvhub webhooks service: integrators' HTTPS endpoints and the signed delivery of catalogue events to them
(Standard Webhooks), with retries, a delivery log and replay."""
