"""``python -m bench.faults <fault>``: see bench/faults/run.py."""

import sys

from bench.faults.run import main

sys.exit(main())
