"""The encoder interface every model in cellbench implements, and the timm ViT builder.

An :class:`Encoder` turns images into vectors. The embedding pipeline
(:mod:`cellbench.embed`) only talks to this interface, so an encoder trained here, a
released one (OpenPhenom) and a user's own plugin are embedded and scored the same way.

Contract (docs/architecture.md, "Encoders"):

* ``metadata``   – the model card record (:func:`cellbench.registry.metadata`);
* ``channels``   – the channel *names* it expects, in its input order (``()`` = any:
  a channel-agnostic model that takes whatever the dataset has);
* ``embed_dim``  – length of one embedding vector;
* ``input_size`` – the square crop/tile size it embeds (``None``: whole sites);
* ``preprocess(uint8 (N, C, H, W)) -> float`` – by default self-standardisation per image
  and channel (docs/training.md, "Common backbone"), applied to the whole site before it is cut
  into tiles, as in training (``preprocess_whole_sites``); a card may say otherwise
  (pixel-stats and CellProfiler see intensities scaled to [0, 1]);
* ``embed(float (N, C, H, W)) -> (N, D)`` – on preprocessed images, in eval mode,
  deterministic.

Reference encoders (oracle, nuisance-only) read the simulator's ground truth per well
instead of pixels: they set ``embeds_wells = True`` and implement ``embed_wells``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch
    from timm.models.vision_transformer import VisionTransformer

#: Added to the per-image standard deviation so a constant channel maps to zeros, not NaN.
STANDARDIZE_EPS = 1e-6


def standardize(images: torch.Tensor, eps: float = STANDARDIZE_EPS) -> torch.Tensor:
    """Self-standardise each image and channel to mean 0, std 1 (float32).

    This is instance normalisation without affine parameters, as in the OpenPhenom release
    (``InstanceNorm2d(affine=False)``) and the paper's "self-standardized" pixel input.
    """
    import torch

    x = images.to(torch.float32)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    var = x.var(dim=(-2, -1), keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


class Encoder:
    """Base class of every encoder. Subclasses set the attributes and implement ``embed``."""

    name: str = ""
    channels: tuple[str, ...] = ()
    embed_dim: int = 0
    input_size: int | None = None
    #: SHA-256 of the weights file the encoder was loaded from (None: no file, e.g. random).
    weights_sha256: str | None = None
    #: True for reference encoders that embed wells from the ground truth, not images.
    embeds_wells: bool = False
    #: True: ``preprocess`` sees whole sites, which are then cut into tiles - the same order as
    #: training (standardise the site, then crop). False: each tile is preprocessed on its own
    #: (a released model whose network normalises every input crop, e.g. OpenPhenom).
    preprocess_whole_sites: bool = True

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}
        self.device = "cpu"

    # -- pixels -> model input ----------------------------------------------------------
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) → float model input. Default: self-standardisation."""
        return standardize(images)

    def embed(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Preprocessed float images (N, C, H, W) in ``channels`` order → (N, embed_dim)."""
        raise NotImplementedError

    def embed_wells(self, dataset: Any) -> tuple[list[str], np.ndarray]:  # pragma: no cover
        """Reference encoders only: (well ids, (n_wells, embed_dim) float32)."""
        raise NotImplementedError(f"{type(self).__name__} embeds images, not wells")

    # -- torch-module plumbing (no-ops for encoders without a network) -------------------
    @property
    def module(self) -> torch.nn.Module | None:
        """The torch network, if any (used for eval(), to(), and parameter counts)."""
        return getattr(self, "_module", None)

    def eval(self) -> Encoder:
        if self.module is not None:
            self.module.eval()
        return self

    def to(self, device: str | torch.device) -> Encoder:
        self.device = str(device)
        if self.module is not None:
            self.module.to(device)
        return self

    def num_parameters(self) -> int:
        module = self.module
        return 0 if module is None else sum(p.numel() for p in module.parameters())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, channels={self.channels}, "
            f"embed_dim={self.embed_dim}, input_size={self.input_size})"
        )


class TorchEncoder(Encoder):
    """An encoder wrapping a torch module whose ``forward_features`` gives tokens.

    ``pooling`` is ``"cls"`` (first token), ``"mean"`` (mean of the patch tokens, prefix
    tokens excluded) or ``"pooled"`` (the module's ``forward_head(pre_logits=True)``).
    """

    def __init__(
        self,
        module: VisionTransformer,
        *,
        channels: tuple[str, ...],
        embed_dim: int,
        input_size: int | None,
        pooling: str = "cls",
        weights_sha256: str | None = None,
    ) -> None:
        super().__init__()
        if pooling not in {"cls", "mean", "pooled"}:
            raise ValueError(f"pooling must be cls, mean or pooled, not {pooling!r}")
        self._module = module.eval()
        self.channels = tuple(channels)
        self.embed_dim = int(embed_dim)
        self.input_size = input_size
        self.pooling = pooling
        self.weights_sha256 = weights_sha256
        #: a trained checkpoint's training configuration (set by ``cellbench.train.export``)
        self.train_config: dict[str, Any] | None = None

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        module = self._module
        with torch.inference_mode():
            x = images.to(self.device, torch.float32)
            if self.pooling == "pooled":
                return module.forward_head(module.forward_features(x), pre_logits=True).float()
            tokens = module.forward_features(x)
            if self.pooling == "cls":
                return tokens[:, 0].float()
            n_prefix = int(getattr(module, "num_prefix_tokens", 1))
            return tokens[:, n_prefix:].mean(dim=1).float()


def build_vit(
    arch: str,
    in_chans: int,
    img_size: int,
    patch_size: int | None = None,
    **kwargs: Any,
) -> VisionTransformer:
    """A timm ViT (``num_classes=0``) for any input-channel count, image and patch size.

    Shared by the baselines and the trainers, so every ViT in cellbench is timm's own
    (no hand-written ViT). Extra ``kwargs`` go to ``timm.create_model``
    (e.g. ``pretrained=True``, ``drop_path_rate``, ``dynamic_img_size``).
    """
    import timm

    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    options: dict[str, Any] = {"num_classes": 0, "in_chans": in_chans, "img_size": img_size}
    if patch_size is not None:
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        options["patch_size"] = patch_size
    options.update(kwargs)
    options.setdefault("pretrained", False)
    return cast("VisionTransformer", timm.create_model(arch, **options))
