"""OpenPhenom: Recursion's public channel-agnostic MAE ViT-S/16 (Kraus et al., CVPR 2024).

The architecture of the public release (huggingface.co/recursionpharma/OpenPhenom, code in
github.com/recursionpharma/maes_microscopy), rebuilt from timm parts — no code from the
checkpoint is ever run:

* a timm ``VisionTransformer`` at 256×256, patch 16, width 384, 12 blocks, 6 heads, with
  ``ParallelScalingBlock`` blocks, qk-norm, no qkv bias, layer-scale 1e-4, a CLS token and
  ``global_pool="avg"`` (so timm puts the final LayerNorm in ``fc_norm``, which the release's
  ``predict`` does not apply);
* ONE patch projection with a single input channel, applied to every channel separately:
  a C-channel image gives C × 256 patch tokens, ordered channel by channel;
* fixed 2-D sin-cos positions (timm's ``build_sincos2d_pos_embed`` with interleaved sin/cos
  is exactly the release's ``generate_2d_sincos_pos_embeddings``), repeated for each of
  ``max_in_chans`` (11) channel slots, zero for the CLS token; the release adds no learned
  channel embedding to the encoder tokens — the channel is known only through the token's
  slot in this table;
* input uint8 → /255 → instance norm per image and channel (``InstanceNorm2d(affine=False)``);
* embedding = mean of all patch tokens (CLS excluded), 384-d; ``channelwise=True`` gives the
  release's per-channel option (384 × C).

The released ``model.safetensors`` is really a ``torch.save({"state_dict": ...})`` file of the
whole MAE (encoder + decoder). It is read with safetensors when it is one, else with
``torch.load(weights_only=True)``; only the ``encoder.vit_backbone.*`` tensors are kept. The
architecture (width, depth, heads, patch and image size) is read from the tensors' shapes, so
a smaller checkpoint in the same format (the tests write one) loads the same way.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cellbench.encoders.base import Encoder, standardize
from cellbench.errors import CellbenchError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from timm.models.vision_transformer import VisionTransformer

    class PhenomViT(VisionTransformer):
        """What :func:`build_backbone` returns: a timm ViT that also records its channel slots."""

        max_in_chans: int
        cls_token: torch.nn.Parameter  # (class_token=True)
        pos_embed: torch.nn.Parameter  # (the fixed sin-cos table)


HUB_ID = "recursionpharma/OpenPhenom"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
BACKBONE_PREFIX = "vit_backbone."
#: Channel slots of the released position table (config.json: encoder.max_in_chans).
MAX_IN_CHANS = 11
INSTANCE_NORM_EPS = 1e-5  # torch.nn.InstanceNorm2d's default, as in the release
LICENSE_NOTE = "the OpenPhenom weights are licensed for NON-COMMERCIAL use only"


# --- architecture ---------------------------------------------------------------------------
def sincos_positions(embed_dim: int, grid: int, max_in_chans: int) -> torch.Tensor:
    """(1, 1 + max_in_chans * grid², D): zero for CLS, then the 2-D table once per channel."""
    import torch
    from timm.layers import build_sincos2d_pos_embed

    table = build_sincos2d_pos_embed([grid, grid], dim=embed_dim, interleave_sin_cos=True)
    table = table.repeat(max_in_chans, 1)
    return torch.cat([torch.zeros(1, embed_dim), table], dim=0)[None]


def build_backbone(
    *,
    embed_dim: int = 384,
    depth: int = 12,
    num_heads: int = 6,
    mlp_ratio: float = 4.0,
    patch_size: int = 16,
    img_size: int = 256,
    max_in_chans: int = MAX_IN_CHANS,
    init_values: float | None = 1e-4,
    qkv_bias: bool = False,
) -> PhenomViT:
    """The release's encoder as a timm ``VisionTransformer`` (1-channel patch projection,
    fixed sin-cos ``pos_embed`` of ``max_in_chans`` slots)."""
    import torch
    from timm.models.vision_transformer import ParallelScalingBlock, VisionTransformer

    vit = VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        in_chans=1,
        num_classes=0,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        qk_norm=True,
        init_values=init_values,
        class_token=True,
        global_pool="avg",
        fc_norm=None,
        block_fn=ParallelScalingBlock,
    )
    grid = img_size // patch_size
    vit.pos_embed = torch.nn.Parameter(
        sincos_positions(embed_dim, grid, max_in_chans), requires_grad=False
    )
    phenom = cast("PhenomViT", vit)
    phenom.max_in_chans = max_in_chans
    return phenom


def channel_agnostic_tokens(vit: PhenomViT, x: torch.Tensor) -> torch.Tensor:
    """All output tokens (N, 1 + C·L, D) of the channel-agnostic ViT for C-channel input."""
    import torch

    n, c, h, w = x.shape
    if c > vit.max_in_chans:
        raise CellbenchError(
            f"OpenPhenom has position slots for {vit.max_in_chans} channels, the input has {c}; "
            "select at most that many channels"
        )
    tokens = vit.patch_embed(x.reshape(n * c, 1, h, w))  # the shared 1-channel projection
    per_channel = tokens.shape[1]
    tokens = tokens.reshape(n, c * per_channel, tokens.shape[-1])
    tokens = torch.cat([vit.cls_token.expand(n, -1, -1), tokens], dim=1)
    tokens = tokens + vit.pos_embed[:, : tokens.shape[1]]
    tokens = vit.norm_pre(tokens)
    tokens = vit.blocks(tokens)
    return vit.norm(tokens)  # Identity in the release (its LayerNorm sits in fc_norm)


# --- checkpoint -----------------------------------------------------------------------------
def _is_safetensors(path: Path) -> bool:
    """A real safetensors file starts with an 8-byte header length then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    size = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < size < os.path.getsize(path)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of an OpenPhenom file, never unpickling code (safetensors or weights_only)."""
    import torch

    from cellbench.io import load_torch_weights, plain_message

    path = Path(path)
    fix = "The file is corrupt or not the release's model.safetensors — download it again."
    state: object  # checked below: a dict of tensors, possibly under "state_dict"
    if _is_safetensors(path):
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds for a bad file
            raise CellbenchError(
                f"could not read OpenPhenom weights {path} ({type(exc).__name__}: {plain_message(exc)}); "
                f"{fix[0].lower()}{fix[1:]}"
            ) from None
    else:
        state = load_torch_weights(path, what="OpenPhenom weights", fix=fix)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CellbenchError(
            f"{path} does not hold a state dict of tensors; use the release's file"
        )
    return state


def backbone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's tensors with the release's ``encoder.vit_backbone.`` prefix removed.

    Decoder, encoder→decoder projection and prediction head tensors are dropped. A state
    dict that is already a bare backbone (``cls_token``, ``blocks.0...``) is kept as is.
    """
    prefixes = {
        k[: k.index(BACKBONE_PREFIX) + len(BACKBONE_PREFIX)] for k in state if BACKBONE_PREFIX in k
    }
    if len(prefixes) > 1:
        raise CellbenchError(
            f"the checkpoint holds several ViT backbones {sorted(prefixes)}; pass one"
        )
    if prefixes:
        prefix = prefixes.pop()
        return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if "cls_token" in state and "patch_embed.proj.weight" in state:
        return dict(state)
    raise CellbenchError(
        "the checkpoint has no `encoder.vit_backbone.*` tensors: it is not an OpenPhenom "
        "release; download recursionpharma/OpenPhenom again"
    )


def infer_architecture(
    state: dict[str, torch.Tensor], max_in_chans: int = MAX_IN_CHANS
) -> dict[str, Any]:
    """Width, depth, heads, MLP ratio, patch and image size from the tensors' shapes."""
    try:
        embed_dim = int(state["cls_token"].shape[-1])
        proj = state["patch_embed.proj.weight"]
        head_dim = int(state["blocks.0.q_norm.weight"].shape[0])
        hidden = int(state["blocks.0.mlp_out_proj.weight"].shape[1])
        n_pos = int(state["pos_embed"].shape[1]) - 1
    except KeyError as exc:
        raise CellbenchError(
            f"the OpenPhenom checkpoint lacks tensor {exc}; it is not the release's "
            "channel-agnostic ViT (parallel blocks, qk-norm): download it again"
        ) from None
    if proj.shape[1] != 1:
        raise CellbenchError("OpenPhenom's patch projection must take 1 channel; wrong checkpoint")
    patch = int(proj.shape[-1])
    grid = math.isqrt(n_pos // max_in_chans)
    if grid * grid * max_in_chans != n_pos:
        raise CellbenchError(
            f"pos_embed has {n_pos} patch slots, not {max_in_chans} channels × a square grid; "
            "pass the matching config.json (encoder.max_in_chans) beside the weights"
        )
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    return {
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": embed_dim // head_dim,
        "mlp_ratio": hidden / embed_dim,
        "patch_size": patch,
        "img_size": grid * patch,
        "max_in_chans": max_in_chans,
        "init_values": 1e-4 if "blocks.0.ls.gamma" in state else None,
        "qkv_bias": "blocks.0.in_proj.bias" in state,
    }


def _max_in_chans(directory: Path) -> int:
    config = directory / CONFIG_FILE
    if config.is_file():
        try:
            return int(json.loads(config.read_text())["encoder"]["max_in_chans"])
        except (KeyError, TypeError, ValueError):
            pass
    return MAX_IN_CHANS


def weights_path(checkpoint: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The release file: ``checkpoint`` (file or directory), the HF cache, or the hub."""
    from cellbench.encoders.hub import hub_file

    fix = (
        f"get them with `hf download {HUB_ID} {WEIGHTS_FILE} {CONFIG_FILE} --local-dir DIR` "
        f"on a machine with internet "
        f"and pass --checkpoint DIR; note: {LICENSE_NOTE}"
    )
    # the config names max_in_chans; small and optional
    return hub_file(
        HUB_ID,
        WEIGHTS_FILE,
        what="OpenPhenom weights",
        fix=fix,
        checkpoint=checkpoint,
        download=download,
        companions=(CONFIG_FILE,),
    )


# --- the encoder ----------------------------------------------------------------------------
class OpenPhenomEncoder(Encoder):
    """Channel-agnostic: embeds whatever channels it is given (at most ``max_in_chans``)."""

    fixed_size = True  # the position table is for img_size: smaller tiles are resized up
    preprocess_whole_sites = False  # the release instance-normalises each input crop

    def __init__(
        self,
        vit: PhenomViT,
        channels: tuple[str, ...] = (),
        channelwise: bool = False,
        weights_sha256: str | None = None,
    ) -> None:
        super().__init__()
        self._module = vit.eval()
        self.channels = tuple(channels)
        self.channelwise = channelwise
        width = int(vit.embed_dim)
        self.token_dim = width
        self.embed_dim = width * len(self.channels) if channelwise else width
        self.input_size = int(vit.patch_embed.img_size[0])
        self.weights_sha256 = weights_sha256

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 → /255 → instance norm per image and channel (the release's input_norm)."""
        import torch

        return standardize(images.to(torch.float32) / 255.0, eps=INSTANCE_NORM_EPS)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            x = images.to(self.device, torch.float32)
            tokens = channel_agnostic_tokens(self._module, x)[:, 1:]
            if not self.channelwise:
                return tokens.mean(dim=1).float()
            n, c = x.shape[0], x.shape[1]
            per_channel = tokens.reshape(n, c, -1, tokens.shape[-1]).mean(dim=2)
            return per_channel.reshape(n, c * tokens.shape[-1]).float()


def load_backbone(path: str | os.PathLike) -> PhenomViT:
    """The encoder ViT of an OpenPhenom file, weights loaded strictly."""
    path = Path(path)
    state = backbone_state(read_state_dict(path))
    arch = infer_architecture(state, _max_in_chans(path.parent))
    vit = build_backbone(**arch)
    missing, unexpected = vit.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CellbenchError(
            f"OpenPhenom weights {path} do not fit the architecture (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}); this timm version may name ParallelScalingBlock "
            "tensors differently, or the file is not the release"
        )
    return vit.eval()


def create(
    checkpoint: str | os.PathLike | None = None,
    *,
    channels: Any = None,
    channelwise: bool = False,
    download: bool = True,
) -> Encoder:
    """The OpenPhenom encoder, weights from ``checkpoint`` (file/dir) or the HF cache/hub."""
    from cellbench.io import sha256_file

    path = weights_path(checkpoint, download=download)
    vit = load_backbone(path)
    chans = tuple(str(c) for c in channels) if channels is not None else ()
    encoder = OpenPhenomEncoder(
        vit, chans, channelwise=channelwise, weights_sha256=sha256_file(path)
    )
    encoder.metadata = {"weights_path": str(path)}
    return encoder
