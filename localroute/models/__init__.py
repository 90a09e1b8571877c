"""Model helpers shared by engines, routers and tests."""
