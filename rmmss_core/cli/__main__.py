import sys

from rmmss_core.cli import main

sys.exit(main())
