"""Other libraries' environments as tinkerx environments (``env=verifiers``)."""
