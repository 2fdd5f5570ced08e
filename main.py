"""vmae2 entry point: one command for every stage.

python main.py --config configs/demo.py --workdir runs/demo
python main.py --config configs/pretrain/vit_b.py --workdir W \
    --config.data.train_list=LIST --config.data.data_root=ROOT

The config names the trainer; `--config.a.b=v` overrides any field. Running the
same command on the same workdir resumes from its last checkpoint. A mistake in
the command, config or data ends with one message and exit status 2 (`--debug`
shows the traceback).
"""

from __future__ import annotations

import logging
import sys

from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

config_flags.DEFINE_config_file('config', None, 'Config file (path[:arg]).', lock_config=True)
flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, metrics, pictures.')
flags.DEFINE_bool('debug', False, 'Show the traceback of a user mistake too.')
flags.DEFINE_bool(
    'allow_config_change',
    False,
    'Resume even though the config changes the run (model, data, batch, schedule, ...).',
)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
    del argv
    # Library chatter (Orbax logs every save at INFO) stays at WARNING; our own
    # progress lines stay at INFO.
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger('vmae2').setLevel(logging.INFO)
    logging.getLogger('data_pipelines').setLevel(logging.INFO)
    from vmae2.runtime import distributed  # pylint: disable=g-import-not-at-top
    from vmae2.runtime import host_env  # pylint: disable=g-import-not-at-top
    from vmae2.tools import cli  # pylint: disable=g-import-not-at-top
    from vmae2.trainers import registry  # pylint: disable=g-import-not-at-top

    def run():
        cfg = cli.loaded_config(flags.FLAGS.config)
        # Before anything touches devices: joins a multi-host run (docs/scaling.md).
        distributed.initialize(cfg)
        host_env.hint_cpu_malloc()
        registry.run(cfg, flags.FLAGS.workdir, flags.FLAGS.allow_config_change)

    cli.run_cli(run, debug=flags.FLAGS.debug)


if __name__ == '__main__':
    from vmae2.tools import cli as _cli  # pylint: disable=g-import-not-at-top

    sys.exit(app.run(main, flags_parser=_cli.parse_flags))
