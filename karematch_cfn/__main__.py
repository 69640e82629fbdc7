"""``python -m karematch_cfn``: the deployer's command line (karematch_cfn/cli.py)."""

import sys

from karematch_cfn.cli import main

sys.exit(main())
