"""Stand-ins for tests, the demo and the benchmarks, never the product path: `echo`, a loopback
OpenAI-compatible server that plays the cloud (echo, fail, hang, trickle, drop); `echo_local`,
`EchoLocal`, a scripted local deployment with no engine (slow start, a replica that dies
mid-stream); `cloud_model`, `CloudModel`, the cloud client as a Serve deployment of its own (the
router-hop benchmark's direct baseline). Nothing in serve/'s request path imports them.
"""
