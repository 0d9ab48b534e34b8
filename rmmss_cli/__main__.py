import sys

from rmmss_cli import main

sys.exit(main())
