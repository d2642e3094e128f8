import sys

from sessionmood_server.launcher import main

sys.exit(main())
