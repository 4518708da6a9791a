"""`python -m paynotify` is the `paynotify` command."""

import sys

from paynotify._cli import main

sys.exit(main())
