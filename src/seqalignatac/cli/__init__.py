"""The ``seqalignatac`` command: ``main`` holds the group; one module per command wraps the library."""
