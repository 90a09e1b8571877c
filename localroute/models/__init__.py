"""Models: a registry of named local models (registry.py) resolved to HF directories in the cache.

`smollm2-135m` is the real pretrained local model of this machine (smollm2.py); `tiny` is a
random-weight Qwen2 for sub-second unit tests only (tiny.py).
"""
