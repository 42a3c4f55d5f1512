import sys

from facelib.app.cli import main

sys.exit(main())
