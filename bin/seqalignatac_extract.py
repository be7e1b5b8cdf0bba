#!/usr/bin/env python3
"""Nextflow step EXTRACT: runs `seqalignatac extract` with the arguments given (options: docs/design.md).

Kept as a separate script so the pipeline's `bin/` names every step it runs; the work itself
lives in the seqalignatac package, which must be installed where the task runs (the container).
"""

import sys

from seqalignatac.cli.main import cli

SUBCOMMAND = "extract"

if __name__ == "__main__":
    cli.main(args=[SUBCOMMAND, *sys.argv[1:]], prog_name="seqalignatac")
