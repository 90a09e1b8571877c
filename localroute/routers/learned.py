"""Import the learned routers so they register (kept apart so baselines load without torch)."""

from localroute.routers import embedding, encoder  # noqa: F401
