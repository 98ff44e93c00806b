"""Sub-commands of the ``cgaa`` CLI, one module each (see cgaa.cli)."""
