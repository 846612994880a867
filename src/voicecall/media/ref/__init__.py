"""Pure-Python references of the media kernels: the oracle the compiled core is tested against."""
