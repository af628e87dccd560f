"""`python -m aipolicy`: the same as the `aipolicy` command."""

import sys

from aipolicy.cli import main

sys.exit(main())
