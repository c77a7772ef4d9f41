"""Networks and the one factory that builds them by name; checkpoints (safetensors + JSON config).

`create_model(name, **cfg)` builds a registered network ("unet": the default window U-Net,
"recurrent": bidirectional propagation); `save_checkpoint` / `load_checkpoint` write and read a
safetensors file whose metadata holds the JSON configuration (architecture, training recipe,
input hashes).
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "load_checkpoint", "register_model", "save_checkpoint"]
