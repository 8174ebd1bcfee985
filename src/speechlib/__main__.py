"""``python -m speechlib``: the same as the ``speechlib`` command."""

import sys

from speechlib.cli import main

sys.exit(main())
