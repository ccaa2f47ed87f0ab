"""`python -m services.warp --port N`: serve the warp stage over gRPC."""

from tryon.service_main import main

main("warp")
