"""Providers: one adapter per wire protocol, plus the embedded local backend."""
