"""python -m awq_ext: the awq-ext command line."""
import sys

from awq_ext.cli import main

sys.exit(main())
