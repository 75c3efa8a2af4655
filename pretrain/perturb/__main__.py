"""``python -m molchannel.pretrain.perturb``: the same as ``molchannel perturb``."""

from molchannel.pretrain.perturb.cli import main

raise SystemExit(main())
