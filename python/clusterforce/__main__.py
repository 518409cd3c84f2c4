import sys

from clusterforce.cli import main

sys.exit(main())
