import sys

from sam2.cli.main import main

sys.exit(main())
