"""The fault campaign (`python -m tools.reliability`) and its Markdown report."""
