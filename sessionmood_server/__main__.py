import sys

from sessionmood_server.cli import main

sys.exit(main())
