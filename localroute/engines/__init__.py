"""Engines: one protocol (base.Engine) for every way of running a model."""
