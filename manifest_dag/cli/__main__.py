"""``python -m manifest_dag.cli``: the same as the ``manifest-dag`` command."""

import sys

from manifest_dag.cli.app import main

sys.exit(main())
