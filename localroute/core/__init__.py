"""The routing core: sides and figures, the latency model, the policy, replay, sweep, accounting."""
