"""The two views of one unlabeled batch: the teacher's weak view and the student's strong view of the same tensor.

Mean-teacher training needs the teacher's boxes to land where the objects are in the student's view,
so the strong view is made *from* the weak one with a known geometric transform (a 3×3 pixel matrix
per image) and the boxes travel through `map_boxes`. Two independently augmented loaders would lose
that correspondence. The photometric part (colour jitter, blur, noise) moves no pixel.

    >>> strong, matrices = strong_view(weak, generator, flip=0.5)
    >>> student_xyxy = map_boxes(teacher_xyxy, matrices[i], width, height)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def strong_view(
    weak: torch.Tensor,
    generator: torch.Generator,
    flip: float = 0.0,
    scale: float = 0.0,
    translate: float = 0.0,
    pixel_generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A photometrically perturbed copy of `weak` (b, 3, h, w) in [0, 1]: mirrored with probability `flip`, and
    zoomed by a factor in 1 ± `scale` about the centre, shifted by up to ± `translate` of the size, when those are set.

    Returns the images and, per image, the 3×3 matrix (on the CPU) mapping weak-view pixels to strong-view pixels.
    `generator` (CPU) draws the geometry, which the teacher's boxes follow on the CPU; `pixel_generator` (default:
    `generator`) draws what only touches pixels (colour factors, blur mask, noise) on its own device, the images'
    on a GPU, so that none of it is copied over. With one CPU generator for both the draws come in the order they
    always did.
    """
    b, _, h, w = weak.shape
    matrices = torch.eye(3).repeat(b, 1, 1)
    mirrored = torch.rand(b, generator=generator) < flip
    matrices[mirrored] = hflip_matrix(w)
    if scale or translate:
        matrices = jitter_matrices(b, w, h, scale, translate, generator) @ matrices
    moved = bool(mirrored.any()) or bool(scale or translate)
    images = warp(weak, matrices) if moved else weak
    return photometric(images, pixel_generator or generator), matrices


def jitter_matrices(
    b: int, width: int, height: int, scale: float, translate: float, generator: torch.Generator
) -> torch.Tensor:
    """Per image, a zoom by a factor in [1 - scale, 1 + scale] about the centre, then a shift of up to ± `translate`
    of the width and height: the size and place variation the labeled half gets from Ultralytics' `scale` and
    `translate`, which a student must also see on the teacher's boxes."""

    def uniform(spread: float) -> torch.Tensor:
        return spread * (2 * torch.rand(b, generator=generator) - 1)

    s = 1 + uniform(scale)
    tx, ty = uniform(translate) * width, uniform(translate) * height
    cx, cy = width / 2, height / 2
    matrices = torch.eye(3).repeat(b, 1, 1)
    matrices[:, 0, 0], matrices[:, 1, 1] = s, s
    matrices[:, 0, 2], matrices[:, 1, 2] = cx - s * cx + tx, cy - s * cy + ty
    return matrices


def photometric(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per image: brightness, contrast and saturation jitter (±40%), a 3×3 blur half the time, Gaussian noise.

    Strong enough that the student cannot copy the teacher's view, and no pixel moves. Everything is drawn by
    `generator` on its own device (on the images' device, nothing is copied to it).
    """
    b = images.shape[0]
    device = generator.device

    def factor(spread: float) -> torch.Tensor:
        return (1 + spread * (2 * torch.rand(b, 1, 1, 1, generator=generator, device=device) - 1)).to(images)

    grey = images.mean(1, keepdim=True)
    out = grey + (images - grey) * factor(0.4)  # saturation
    out = out * factor(0.4)  # brightness
    mean = out.mean((1, 2, 3), keepdim=True)
    out = mean + (out - mean) * factor(0.4)  # contrast
    blurred = F.avg_pool2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    blur = (torch.rand(b, 1, 1, 1, generator=generator, device=device) < 0.5).to(images)
    out = blur * blurred + (1 - blur) * out
    noise = torch.randn(out.shape, generator=generator, device=device).to(images) * 0.03
    return (out + noise).clamp_(0, 1)


def hflip_matrix(width: int) -> torch.Tensor:
    """Mirror left-right: pixel x goes to width - x (pixel edges, not centres)."""
    return torch.tensor([[-1.0, 0.0, float(width)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """`images` (b, c, h, w) resampled so that the content at pixel p moves to `matrices[i] @ p` (grey outside)."""
    return _resampled(images - 114 / 255, matrices) + 114 / 255  # Ultralytics' letterbox grey outside the image


def maps_in_view(maps: torch.Tensor, matrices: torch.Tensor, stride: float) -> torch.Tensor:
    """Per-location maps (b, c, h, w) on a grid of `stride` pixels (a detection head's level) of the weak view, in
    the strong view: the teacher's dense scores where the student's anchors see the same content (0 outside)."""
    cells = torch.diag(torch.tensor([float(stride), float(stride), 1.0]))
    return _resampled(maps, torch.linalg.inv(cells) @ matrices.float().cpu() @ cells)


def _resampled(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """`images` moved as `matrices` (pixels of `images` itself) say, bilinear, zeros outside."""
    _, _, h, w = images.shape
    to_norm = torch.tensor([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]])
    # affine_grid maps each output (normalised) position to where it samples the input: the inverse transform
    theta = to_norm @ torch.linalg.inv(matrices.float().cpu()) @ torch.linalg.inv(to_norm)
    grid = F.affine_grid(to_device(theta[:, :2], images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def to_device(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A CPU tensor as `like`'s dtype on `like`'s device: on a GPU from pinned memory, without blocking the host."""
    tensor = tensor.to(like.dtype)
    if like.device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(like.device, non_blocking=True)


def map_boxes(xyxy: torch.Tensor, matrix: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Boxes (n, 4) of the weak view in the strong view: each box's transformed corners' enclosing box, clipped.

    Box geometry is computed in fp32 whatever autocast is active (the trainer's AMP wraps `preprocess_batch`): in
    fp16 an area over 65504 px² (a box over ~256×256 px at imgsz 640) overflows, in bf16 corners round by pixels.
    """
    if not len(xyxy):
        return xyxy.float()
    lo, hi = transformed_boxes(xyxy, matrix).split(2, 1)
    limits = torch.tensor([width, height], dtype=torch.float32, device=xyxy.device)
    return torch.cat([torch.minimum(lo.clamp(min=0), limits), torch.minimum(hi.clamp(min=0), limits)], 1)


def visible_share(xyxy: torch.Tensor, matrix: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Per box (n, 4) of the weak view, the share of its area in the strong view that lies inside the image (fp32)."""
    whole = transformed_boxes(xyxy, matrix)
    inside = map_boxes(xyxy, matrix, width, height)

    def area(boxes: torch.Tensor) -> torch.Tensor:
        return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)

    return area(inside) / area(whole).clamp(min=1e-9)


def transformed_boxes(xyxy: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Boxes (n, 4) of the weak view in the strong view, unclipped: each box's transformed corners' enclosing box."""
    with torch.autocast(device_type=xyxy.device.type, enabled=False):
        x1, y1, x2, y2 = xyxy.float().unbind(1)
        points = ((x1, y1), (x2, y1), (x1, y2), (x2, y2))
        corners = torch.stack([torch.stack([x, y, torch.ones_like(x)], 1) for x, y in points], 1)
        moved = corners @ matrix.to(device=xyxy.device, dtype=torch.float32).T  # (n, 4 corners, 3)
        xy = moved[..., :2] / moved[..., 2:]
        return torch.cat([xy.min(1).values, xy.max(1).values], 1)
