"""The error a student directory that cannot be loaded raises (apart from :mod:`.student`, which needs
numpy: ``tokenomy serve`` catches it without importing numpy)."""


class StudentError(ValueError):
    """A student directory that cannot be loaded, with the path and the reason."""
