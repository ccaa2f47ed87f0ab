"""The shared gRPC stage runtime: server, interceptor, metrics."""

from tryon.runtime.server import ServiceBinding, StageServer, configure_logging, exit_process, serve

__all__ = ["ServiceBinding", "StageServer", "configure_logging", "exit_process", "serve"]
