"""Offline validation of RO e-Factura documents (UBL 2.1 schema, EN 16931 and CIUS-RO rules, Romanian VAT rates)."""
from spvhub_einvoice.validator import CIUS_RO_VERSION, Finding, Report, Validator, default_validator, validate

__all__ = ["CIUS_RO_VERSION", "Finding", "Report", "Validator", "default_validator", "validate"]
