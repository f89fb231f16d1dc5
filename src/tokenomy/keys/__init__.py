"""Virtual keys: config-file keys and keys created through the admin API (stored only as hashes)."""
