"""`python -m paynotify` is the `paynotify` command."""

import sys

from paynotify.cli._main import main

sys.exit(main())
