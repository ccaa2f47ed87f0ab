"""The REST gateway: FastAPI app (gateway.main.create_app), settings, routes, problem details, uploads."""
