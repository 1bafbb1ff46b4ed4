"""The ``orbital`` command line."""
