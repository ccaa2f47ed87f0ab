"""`python -m services.inpaint --port N`: serve the inpaint stage over gRPC."""

from tryon.service_main import main

main("inpaint")
