"""tinkerx: Hydra-configured LLM post-training experiments on the Tinker API or your own hardware."""

import os

# MKL (torch's CPU BLAS) may otherwise use fewer threads than asked when the machine is busy, which
# changes how sums are split and so the last bits of a loss: a seeded CPU run must give the same
# numbers however loaded the machine is (reproduce, resume and MCP replay compare line for line).
# Set before torch is imported; a value the user exported wins.
os.environ.setdefault("MKL_DYNAMIC", "FALSE")
