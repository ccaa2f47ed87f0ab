"""`python -m services.blend --port N`: serve the blend stage over gRPC."""

from tryon.service_main import main

main("blend")
