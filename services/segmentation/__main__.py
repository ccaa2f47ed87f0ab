"""`python -m services.segmentation --port N`: serve the segmentation stage over gRPC."""

from tryon.service_main import main

main("segmentation")
