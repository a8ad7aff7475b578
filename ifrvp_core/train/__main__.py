"""`python -m ifrvp_core.train` (and torchrun's `-m ifrvp_core.train`): see `ifrvp_core.train`."""
import sys

from ifrvp_core.train.entry import main

if __name__ == "__main__":
    sys.exit(main())
