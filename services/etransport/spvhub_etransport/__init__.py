"""spvhub etransport service: e-Transport carrier view: transports where a company is the carrier, with UIT history."""
