"""spvhub invitations service."""
