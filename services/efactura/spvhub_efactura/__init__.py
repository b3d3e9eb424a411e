"""spvhub efactura service."""
