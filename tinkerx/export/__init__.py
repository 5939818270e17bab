"""Checkpoints as files other tools load: a Hugging Face folder (LoRA merged) or a GGUF file."""
