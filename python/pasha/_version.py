"""pasha's version: the one place it is written (pasha.__version__, and the wheel's metadata through
the build backend, python/build_backend, which reads this line)."""

__version__ = '4.0.0'
