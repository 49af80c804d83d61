"""Log backends (adapters of the ``Log`` port)."""
