"""`python -m bench`: run every benchmark against a broker of its own; see bench/README.md."""

import sys

from bench.runner import main

sys.exit(main())
