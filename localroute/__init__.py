"""localroute: send each LLM request to a small local model when it suffices, else to the cloud."""

__version__ = "0.1.0"
