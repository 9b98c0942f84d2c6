import sys

from pynet_bokeh.demo.command import main

sys.exit(main())
