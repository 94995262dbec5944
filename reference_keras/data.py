"""``DataGenerator.load`` of the keras-io depth estimation example, as a function.

The one deliberate change: the original's ``np.log(depth_map, where=mask)`` has no ``out``, so
masked (invalid) pixels hold whatever memory numpy handed back, and those values then leak
into the resized target through the bilinear kernel. We define them as 0.1, the lower clip
bound, before the resize; ``lightning_depth.data.diode`` does the same, so the two agree.
"""

from __future__ import annotations

import os
from typing import Tuple

import cv2
import numpy as np
import tensorflow as tf

MIN_DEPTH = 0.1


def load_sample(
    image_path: str, depth_path: str, mask_path: str, dim: Tuple[int, int] = (256, 256)
) -> Tuple[np.ndarray, np.ndarray]:
    """Load one DIODE sample the way the original ``DataGenerator.load`` does.

    Image: ``cv2.imread`` (BGR) -> RGB -> ``cv2.resize`` (INTER_LINEAR) -> float32 in [0, 1].
    Depth: clipped to ``[0.1, min(300, p99)]``, log on valid pixels (invalid: 0.1), clipped to
    ``[0.1, log(max_depth)]``, ``cv2.resize`` (INTER_LINEAR), channel axis added.

    Args:
        image_path: ``<id>.png``, an RGB image.
        depth_path: ``<id>_depth.npy``, depth in metres, ``(H, W, 1)`` or ``(H, W)``.
        mask_path: ``<id>_depth_mask.npy``, ``(H, W)``, > 0 where the depth is valid.
        dim: output ``(height, width)``. The original passed ``dim`` straight to
            ``cv2.resize``, which reads it as ``(width, height)``, but allocated its batch as
            ``(batch, *dim, 3)``; the two only agree for its square 256x256, so we take
            ``(height, width)`` and hand cv2 the swapped pair.

    Returns:
        ``(image, depth)``: float32 arrays of shapes ``(H, W, 3)`` and ``(H, W, 1)``.
    """
    height, width = dim
    cv2_size = (width, height)

    image_ = cv2.imread(image_path)
    if image_ is None:
        raise FileNotFoundError(f"cv2 could not read the image {image_path!r}")
    image_ = cv2.cvtColor(image_, cv2.COLOR_BGR2RGB)
    image_ = cv2.resize(image_, cv2_size)
    image_ = tf.image.convert_image_dtype(image_, tf.float32)

    for path in (depth_path, mask_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: {path!r}")
    depth_map = np.load(depth_path).squeeze()

    mask = np.load(mask_path)
    mask = mask > 0

    max_depth = min(300, np.percentile(depth_map, 99))
    depth_map = np.clip(depth_map, MIN_DEPTH, max_depth)
    # Original: np.log(depth_map, where=mask), which leaves the masked pixels uninitialised.
    depth_map = np.log(depth_map, out=np.full_like(depth_map, MIN_DEPTH), where=mask)

    # cv2 reads the masked array's underlying data, masked pixels included.
    depth_map = np.ma.masked_where(~mask, depth_map)

    depth_map = np.clip(depth_map, 0.1, np.log(max_depth))
    depth_map = cv2.resize(depth_map, cv2_size)
    depth_map = np.expand_dims(depth_map, axis=2)
    depth_map = tf.image.convert_image_dtype(depth_map, tf.float32)

    return image_.numpy(), depth_map.numpy()
