import sys

from authserver.cli import main

sys.exit(main())
