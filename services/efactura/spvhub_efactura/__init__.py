"""spvhub efactura service: e-Factura inbox: per-CIF sync, ANAF message ledger, archived invoices, PDFs,
exports and submissions."""
