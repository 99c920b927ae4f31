"""Encoders: one module per family, all behind :class:`cellbench.encoders.base.Encoder`.

Create them by name with :func:`cellbench.registry.create`; the modules here are imported
lazily by the registry so that listing models never imports torch.
"""

from cellbench.encoders.base import Encoder, TorchEncoder, build_vit, standardize

__all__ = ["Encoder", "TorchEncoder", "build_vit", "standardize"]
