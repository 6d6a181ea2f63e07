import sys

from cscat.cli import main

sys.exit(main())
