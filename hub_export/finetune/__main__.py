"""`python -m hub_export.finetune ...`: the fine-tuning command line (see `cli`)."""

import sys

from hub_export.finetune import cli

sys.exit(cli.run_main(sys.argv))
