"""`python -m meshlab.cli ...`: the same as the `meshlab` console script."""

import sys

from meshlab.cli import main

sys.exit(main())
