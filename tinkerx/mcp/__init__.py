"""An MCP server that lets an AI agent drive SFT and GRPO step by step (``python -m tinkerx.mcp``)."""
