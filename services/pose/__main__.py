"""`python -m services.pose --port N`: serve the pose stage over gRPC."""

from tryon.service_main import main

main("pose")
