"""fastcore: an HTTP/1.1 server for Python web applications with a Cython core."""

__version__ = "0.1.0"
# Read by fastcore.installation: fastai's package of the same import name
# replaces this file when installed over ours, and this line goes with it.
__distribution__ = "fastcore-server"
