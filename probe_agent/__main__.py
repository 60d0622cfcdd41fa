import sys

from probe_agent.cli import main

sys.exit(main())
