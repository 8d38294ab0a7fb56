import sys

from bench.load.harness import main

sys.exit(main())
