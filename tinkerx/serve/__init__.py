"""``python -m tinkerx.serve``: the local backend served over Tinker's own HTTP protocol.

Scripts written for Tinker run unmodified against it (``ServiceClient(base_url=...)``), on your
own hardware; tinkerx's tests use it to run ``backend=tinker`` end to end with no network.
"""
