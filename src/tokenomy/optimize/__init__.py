"""Token optimization: the ``optimize`` stage and its transforms (see :mod:`tokenomy.optimize.stage`)."""
