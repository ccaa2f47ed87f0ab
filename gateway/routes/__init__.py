"""One router per resource: try-on jobs, health, examples, limits, local files, metrics."""
