"""``python -m jobs.recorder``: the command line of :mod:`jobs.recorder.cli`."""

import sys

from jobs.recorder.cli import main

sys.exit(main())
