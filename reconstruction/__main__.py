import sys

from reconstruction.cli import main

sys.exit(main())
