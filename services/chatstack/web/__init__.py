"""HTTP handlers shared by the services: health, readiness, the static client."""
