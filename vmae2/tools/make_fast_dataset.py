"""Rewrite a video dataset into a fast training-read format (data_pipelines/fast_format.py).

Usage::

    python -m vmae2.tools.make_fast_dataset --input LIST_OR_DIR --output DIR
        [--short-side 320] [--format video|jpeg-arrayrecord] [--gop 16]
        [--quality 90] [--data-root ROOT] [--workers N]

``--input`` is a folder of videos (searched recursively) or an official
pre-training list (``path start_idx total_frames`` lines; ``--data-root``
prefixes the paths). Each video becomes, under ``--output`` at its relative
path:

* ``--format video``: ``<name>.mp4``, H.264 (libx264; MPEG-4 Part 2 when libx264
  is missing), keyframe every ``--gop`` frames, no B-frames, same frame rate,
  short side ``--short-side`` (never upscaled; sizes rounded to even).
* ``--format jpeg-arrayrecord``: ``<name>.array_record`` with one JPEG
  (``--quality``) per frame, record i = frame i, short side ``--short-side``.

A ``manifest.json`` (one entry per video: source, output, frames, size, fps) is
written last. Read with ``fast_format.decode_frames`` / ``num_frames`` or the
pre-training pipeline with ``--config.data.reader=fast``.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import sys
from collections.abc import Iterator

import av
import numpy as np
from PIL import Image

from data_pipelines import fast_format
from data_pipelines import sources

FORMATS = tuple(fast_format.FORMAT_SUFFIXES)


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side at most ``short_side``, both even (yuv420p)."""
    scale = min(1.0, short_side / min(width, height))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def _frames(path: str, short_side: int) -> Iterator[tuple[av.VideoFrame, tuple, object]]:
    """Decoded frames of ``path`` resized (swscale bilinear), with size and frame rate."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 25
        size = None
        for frame in container.decode(stream):
            if size is None:
                size = target_size(frame.width, frame.height, short_side)
            yield (
                frame.reformat(
                    width=size[0], height=size[1], format="rgb24", interpolation="BILINEAR"
                ),
                size,
                rate,
            )


def write_video(src: str, dst: str, short_side: int, gop: int, crf: int = 18) -> dict:
    """Re-encodes ``src`` to ``dst`` (mp4); returns its manifest entry."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    count, size, rate = 0, None, None
    tmp = dst + ".part"
    with av.open(tmp, mode="w", format="mp4") as out:
        stream = None
        for frame, size, rate in _frames(src, short_side):
            if stream is None:
                stream = out.add_stream(codec, rate=rate)
                stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
                stream.gop_size = gop
                stream.max_b_frames = 0
                if codec == "libx264":
                    stream.options = {
                        "crf": str(crf),
                        "preset": "fast",
                        "bf": "0",
                        "keyint_min": str(gop),
                        "sc_threshold": "0",
                    }
                else:
                    stream.bit_rate = 4_000_000
            new = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="rgb24")
            new.pts = count
            for packet in stream.encode(new):
                out.mux(packet)
            count += 1
        if stream is None:
            raise ValueError(f"{src}: no frames decoded")
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, dst)
    return {"frames": count, "width": size[0], "height": size[1], "fps": float(rate)}


def write_jpeg_arrayrecord(src: str, dst: str, short_side: int, quality: int = 90) -> dict:
    """Writes every frame of ``src`` as a JPEG record of ``dst``; returns its manifest entry."""
    from array_record.python.array_record_module import ArrayRecordWriter

    count, size, rate = 0, None, None
    tmp = dst + ".part"
    # group_size:1 puts each record in its own chunk: a random read decompresses one frame.
    writer = ArrayRecordWriter(tmp, "group_size:1")
    try:
        for frame, size, rate in _frames(src, short_side):
            buf = io.BytesIO()
            Image.fromarray(frame.to_ndarray()).save(buf, format="JPEG", quality=quality)
            writer.write(buf.getvalue())
            count += 1
    finally:
        writer.close()
    if count == 0:
        os.remove(tmp)
        raise ValueError(f"{src}: no frames decoded")
    os.replace(tmp, dst)
    return {"frames": count, "width": size[0], "height": size[1], "fps": float(rate)}


def input_videos(spec: str, data_root: str = "") -> list[tuple[str, str]]:
    """(source path, relative output stem) for a folder or an official list file."""
    if os.path.isdir(spec):
        records = sources.list_video_folder(spec)
        base = spec
    elif os.path.isfile(spec):
        records = [r for r in sources.read_pretrain_list(spec, data_root) if r.is_video]
        base = data_root or os.path.commonpath([os.path.dirname(r.path) for r in records] or ["."])
    else:
        raise FileNotFoundError(f"--input {spec!r} is neither a folder nor a list file")
    out = []
    for r in records:
        rel = os.path.relpath(r.path, base) if base else os.path.basename(r.path)
        if rel.startswith(".."):
            rel = os.path.basename(r.path)
        out.append((r.path, os.path.splitext(rel)[0]))
    return out


def _convert(job) -> dict:
    src, dst, fmt, short_side, gop, quality = job
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    try:
        if fmt == "video":
            info = write_video(src, dst, short_side, gop)
        else:
            info = write_jpeg_arrayrecord(src, dst, short_side, quality)
    except (av.FFmpegError, OSError, ValueError) as e:
        return {"source": src, "output": None, "error": f"{type(e).__name__}: {e}"}
    return {"source": src, "output": dst, **info}


def convert(
    input_spec: str,
    output: str,
    *,
    fmt: str = "video",
    short_side: int = 320,
    gop: int = fast_format.DEFAULT_GOP,
    quality: int = 90,
    data_root: str = "",
    workers: int = 1,
) -> list[dict]:
    """Converts every input video; returns the manifest entries (also in manifest.json)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: choose one of {FORMATS}")
    ext = fast_format.FORMAT_SUFFIXES[fmt]
    jobs = [
        (src, os.path.join(output, stem + ext), fmt, short_side, gop, quality)
        for src, stem in input_videos(input_spec, data_root)
    ]
    if not jobs:
        raise ValueError(f"no videos found in {input_spec!r}")
    os.makedirs(output, exist_ok=True)
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            entries = pool.map(_convert, jobs)
    else:
        entries = [_convert(j) for j in jobs]
    with open(os.path.join(output, "manifest.json"), "w") as f:
        json.dump(
            {"format": fmt, "short_side": short_side, "gop": gop, "videos": entries}, f, indent=1
        )
    return entries


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="folder of videos or official list file")
    ap.add_argument("--output", required=True)
    ap.add_argument("--short-side", type=int, default=320)
    ap.add_argument("--format", default="video", choices=FORMATS)
    ap.add_argument("--gop", type=int, default=fast_format.DEFAULT_GOP)
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    ap.add_argument("--data-root", default="")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    entries = convert(
        args.input,
        args.output,
        fmt=args.format,
        short_side=args.short_side,
        gop=args.gop,
        quality=args.quality,
        data_root=args.data_root,
        workers=args.workers,
    )
    bad = [e for e in entries if e.get("error")]
    frames = int(np.sum([e.get("frames", 0) for e in entries]))
    print(f"wrote {len(entries) - len(bad)} videos ({frames} frames) to {args.output}")
    for e in bad:
        print(f"FAILED {e['source']}: {e['error']}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
