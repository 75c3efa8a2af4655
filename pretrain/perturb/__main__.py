"""``python -m molchannel.pretrain.perturb``: the same as ``molchannel perturb``."""

import sys

from molchannel.cli.main import main

raise SystemExit(main(["perturb", *sys.argv[1:]]))
