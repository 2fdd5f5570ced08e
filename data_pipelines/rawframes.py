"""Reading raw-frame folders (SSv2 as distributed: one JPEG per frame).

Official ``RawFrameClsDataset.load_frame`` (spec 5.3, 8.1) reads
``os.path.join(folder, fname_tmpl.format(idx + start_idx))`` with cv2 and
converts BGR to RGB; defaults ``--fname_tmpl img_{:05}.jpg --start_idx 1``.
Here PIL decodes the files (``convert('RGB')``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from data_pipelines.decode import VideoDecodeError, check_indices

__all__ = ["FNAME_TMPL", "START_IDX", "load_rawframes"]

FNAME_TMPL = "img_{:05}.jpg"
START_IDX = 1


def load_rawframes(
    folder: str,
    indices: Sequence[int] | np.ndarray,
    fname_tmpl: str = FNAME_TMPL,
    start_idx: int = START_IDX,
) -> np.ndarray:
    """Load frames ``indices`` (0-based) of a raw-frame folder.

    Frame ``i`` is the file ``fname_tmpl.format(i + start_idx)``.  Each distinct
    index is read once; repeats are copies.

    Returns:
      ``np.uint8 [len(indices), H, W, 3]`` RGB.

    Raises:
      ValueError: empty, negative or decreasing indices (every sampler gives
        non-decreasing ones, as the video decoders need).
      VideoDecodeError: missing folder or file, an unreadable image, or frames
        of different sizes (``path`` is the folder).
    """
    idx = check_indices(indices)
    if not os.path.isdir(folder):
        raise VideoDecodeError(folder, "raw-frame folder does not exist")
    cache: dict[int, np.ndarray] = {}
    for i in np.unique(idx).tolist():
        path = os.path.join(folder, fname_tmpl.format(i + start_idx))
        try:
            with Image.open(path) as img:
                cache[i] = np.asarray(img.convert("RGB"))
        except FileNotFoundError:
            raise VideoDecodeError(folder, f"frame file {path!r} does not exist") from None
        except (UnidentifiedImageError, OSError) as e:
            raise VideoDecodeError(folder, f"cannot read frame {path!r} ({e})") from e
    shapes = {a.shape for a in cache.values()}
    if len(shapes) != 1:
        raise VideoDecodeError(folder, f"frames differ in size: {sorted(shapes)}")
    return np.stack([cache[i] for i in idx.tolist()])
