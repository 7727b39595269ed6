"""Entry point: ``python -m bench`` from the repo root."""

import sys

from bench.run import main

sys.exit(main())
