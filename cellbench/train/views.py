"""Batched augmentations in torch: multi-crop views for the self-supervised trainers.

All randomness comes from an explicit CPU ``torch.Generator`` (seeded per step by the loop), so a
step's views are a pure function of (seed, step, rank) - the basis of bit-exact resume.

Choices (docs/training.md; the CWA-MSN paper, section 3):
* crops are taken at native resolution (no resizing), so a cell keeps its size in pixels;
  the random ("global") view has side ``crop_size``, each focal ("local") view ``focal_size``;
* MSN/CropMAE views get crop + flip only (colour jitter, grayscale and blur are for natural
  images); ViT-WSL adds 90 degree rotations and per-channel brightness/contrast jitter;
* pixels are self-standardised per image and channel (the encoders' input contract,
  :func:`cellbench.encoders.base.standardize`) on the whole site before cropping.
"""

from __future__ import annotations

import torch

from cellbench.errors import CellbenchError


def standardize(images: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """uint8/float (B, C, H, W) -> float32 with mean 0, std 1 per image and channel."""
    from cellbench.encoders.base import standardize as _standardize

    return _standardize(images, eps)


def check_size(images: torch.Tensor, size: int) -> None:
    height, width = images.shape[-2:]
    if size > min(height, width):
        raise CellbenchError(
            f"crop size {size} px is larger than the images ({height}x{width} px); "
            f"set a smaller crop_size/focal_size (e.g. --set crop_size={min(height, width)})."
        )


def random_crops(
    images: torch.Tensor, size: int, generator: torch.Generator, n: int = 1
) -> torch.Tensor:
    """``n`` random ``size`` x ``size`` crops of every image: (n * B, C, size, size), view-major."""
    check_size(images, size)
    b, c, h, w = images.shape
    tops = torch.randint(0, h - size + 1, (n * b,), generator=generator)
    lefts = torch.randint(0, w - size + 1, (n * b,), generator=generator)
    dev = images.device
    tops, lefts = tops.to(dev), lefts.to(dev)
    offsets = torch.arange(size, device=dev)
    rows = (tops[:, None] + offsets)[:, None, :, None]  # (nB, 1, s, 1)
    cols = (lefts[:, None] + offsets)[:, None, None, :]  # (nB, 1, 1, s)
    src = torch.arange(n * b, device=dev) % b
    chans = torch.arange(c, device=dev)[None, :, None, None]
    return images[src[:, None, None, None], chans, rows, cols]


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    check_size(images, size)
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]


def random_flips(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Independent horizontal and vertical flips, each with probability 1/2, per image."""
    n = images.shape[0]
    hflip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    vflip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    out = torch.where(hflip[:, None, None, None], images.flip(-1), images)
    return torch.where(vflip[:, None, None, None], out.flip(-2), out)


def random_rot90(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random multiple of 90 degrees per image (square images)."""
    k = torch.randint(0, 4, (images.shape[0],), generator=generator).to(images.device)
    out = images
    for quarter in (1, 2, 3):
        out = torch.where((k == quarter)[:, None, None, None], images.rot90(quarter, (-2, -1)), out)
    return out


def channel_jitter(
    images: torch.Tensor, generator: torch.Generator, brightness: float = 0.2, contrast: float = 0.2
) -> torch.Tensor:
    """Per-image, per-channel contrast (scale) and brightness (shift) jitter on standardised pixels."""
    n, c = images.shape[:2]
    scale = 1.0 + contrast * (2 * torch.rand(n, c, 1, 1, generator=generator) - 1)
    shift = brightness * (2 * torch.rand(n, c, 1, 1, generator=generator) - 1)
    scale, shift = scale.to(images.device), shift.to(images.device)
    return images * scale + shift


def multi_crop(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    crop_size: int,
    focal_size: int,
    n_random: int = 1,
    n_focal: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """MSN anchor views of standardised images: (random views, focal views), each flipped.

    Random views: (n_random * B, C, crop_size, crop_size); focal views:
    (n_focal * B, C, focal_size, focal_size) or None. View-major order (view 0 of every
    image, then view 1, ...), the order in which MSN repeats its targets.
    """
    rand = random_flips(random_crops(images, crop_size, generator, n_random), generator)
    focal = None
    if n_focal > 0:
        focal = random_flips(random_crops(images, focal_size, generator, n_focal), generator)
    return rand, focal
