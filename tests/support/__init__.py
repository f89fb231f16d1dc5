"""Test support: running a real gateway on loopback."""
