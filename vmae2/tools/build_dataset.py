"""Build a video dataset as a TFDS dataset (ArrayRecord; read with `tfds.data_source`).

    python -m vmae2.tools.build_dataset NAME --manual_dir M --data_dir D
        [--config split1] [--workers N] [--short_side 320] [--quality 90]
        [--beam_pipeline_options 'runner=DirectRunner,direct_num_workers=8']

NAME: ucf101, hmdb51 (configs split1..split3), ssv2, kinetics400, kinetics600,
kinetics700, kinetics710, video_folder (config = your dataset's name). M is the
download unpacked as distributed (see data_pipelines/datasets/layouts.py for each
layout); D receives D/NAME/CONFIG/1.0.0/. A video that is missing or does not
decode is skipped and listed with the reason in the dataset's metadata.json and in
the summary printed at the end. Running the command again after an interruption
re-encodes only the videos not yet done. With --beam_pipeline_options the build
runs as an Apache Beam pipeline (install apache-beam; e.g. Dataflow or Spark
runners for Kinetics-710). Train from it with
--config.data.tfds_name=NAME[/CONFIG] --config.data.tfds_data_dir=D.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from vmae2.errors import DataError
from vmae2.tools.cli import run_cli


def parse(argv: Sequence[str] | None):
    from data_pipelines.datasets import builders

    ap = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[2],
    )
    ap.add_argument('name', choices=sorted(builders.BUILDERS))
    ap.add_argument('--manual_dir', required=True, help='the download, unpacked as distributed')
    ap.add_argument('--data_dir', required=True, help='where TFDS datasets are written')
    ap.add_argument('--config', default=None, help='split1/2/3 (ucf101, hmdb51); the name (video_folder)')
    ap.add_argument('--workers', type=int, default=os.cpu_count() or 1, help='encoding processes')
    ap.add_argument('--short_side', type=int, default=320, help='stored short side (never upscaled)')
    ap.add_argument('--quality', type=int, default=90, help='JPEG quality')
    ap.add_argument('--beam_pipeline_options', default='', help='comma-separated Beam flags')
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import tensorflow_datasets as tfds

    from data_pipelines.datasets import builders
    from data_pipelines.datasets import layouts

    args = parse(argv)
    if not os.path.isdir(args.manual_dir):
        raise DataError(f'--manual_dir {args.manual_dir} is not a folder')
    try:
        builder = builders.make(
            args.name, data_dir=args.data_dir, config=args.config, workers=args.workers,
            beam=bool(args.beam_pipeline_options), short_side=args.short_side, quality=args.quality,
        )
    except ValueError as e:
        raise DataError(str(e)) from None
    download = dict(manual_dir=args.manual_dir)
    if args.beam_pipeline_options:
        beam = tfds.core.lazy_imports.apache_beam
        flags = [f'--{o}' for o in args.beam_pipeline_options.split(',') if o]
        download['beam_options'] = beam.options.pipeline_options.PipelineOptions(flags=flags)
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(**download))
    except FileNotFoundError as e:
        raise DataError(e.strerror or str(e)) from None
    except layouts.LayoutError as e:
        raise DataError(str(e)) from None
    builder.remove_build_files()
    print('\n'.join(builders.summary_lines(builder)))
    return 0


if __name__ == '__main__':
    run_cli(lambda: main(sys.argv[1:]))
