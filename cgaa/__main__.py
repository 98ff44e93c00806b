"""``python -m cgaa`` is the ``cgaa`` command line."""
import sys

from cgaa.cli import main

sys.exit(main())
