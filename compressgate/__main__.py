"""``python -m compressgate ...``: the ``compressgate`` command."""

import sys

from compressgate.cli.main import main

sys.exit(main())
