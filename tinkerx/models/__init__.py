"""Model loaders: each turns a ``conf/model/*.yaml`` node into a tokenizer and a trainable model.

None of them imports torch or transformers until asked to load, so importing this package is cheap.
"""

from tinkerx.models.gguf import GGUFModel
from tinkerx.models.hub import HubModel
from tinkerx.models.loader import ModelLoader
from tinkerx.models.tiny import TinyModel

__all__ = ["GGUFModel", "HubModel", "ModelLoader", "TinyModel"]
