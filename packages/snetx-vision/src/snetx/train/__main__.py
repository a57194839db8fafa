import sys

from snetx.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
