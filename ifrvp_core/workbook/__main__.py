"""`python -m ifrvp_core.workbook` (what `make workbook` and `make ablations` run): see `ifrvp_core.workbook.runner`."""
import sys

from ifrvp_core.workbook.runner import main

sys.exit(main())
