"""Shared building blocks of every spvhub service."""
