"""tryon: virtual try-on. The common package shared by every stage service, the pipeline and the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tryon")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
