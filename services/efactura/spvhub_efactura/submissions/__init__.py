"""Outgoing e-Factura submissions: invoices and credit notes filed at ANAF exactly once per idempotency key, followed
to `ok`/`nok`, and buyer messages (RASP); the legal filing clock of the invoices still to be filed.

`service` holds the use cases, `api` the HTTP routes, `repository` the SQL, `anaf` the port to ANAF, `filing` the
filing clock and `errors` the refusals a client sees."""
