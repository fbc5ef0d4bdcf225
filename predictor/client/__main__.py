import sys

from predictor.client.cli import main

if __name__ == "__main__":
    sys.exit(main())
