import sys

from pynet_bokeh.cli import main

sys.exit(main())
