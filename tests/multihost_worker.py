"""One process of tests/multihost_test.py (run as a script, never collected).

python tests/multihost_worker.py MODE WORKDIR VIDEO_DIR [PORT NUM_PROCESSES PROCESS_ID]

MODE
  train      pre-training (registry.run) for 3 steps; with PORT..., as one process
             of a multi-process run (vmae2 distributed start-up from the config).
  reference  one process, same global batches: the per-process shards of a
             2-process run are read here and concatenated in process order,
             exactly as jax.make_array_from_process_local_data lays them out.
  restore    one process restores the latest checkpoint of WORKDIR onto its own
             mesh and writes the parameters to WORKDIR/restored.npz.

The caller sets XLA_FLAGS (device count) and JAX_PLATFORMS=cpu.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config(video_dir: str):
    import tiny_configs  # tests/ is this script's directory, so it is on sys.path

    c = tiny_configs.tiny_pretrain_config(video_dir)
    c.mesh = {'data': 1, 'fsdp': -1}  # FSDP across the processes' devices
    c.optim.base_lr = 1.0
    c.optim.total_steps = 3
    c.optim.warmup_steps = 1
    c.log_every = 1
    c.checkpoint_every = 3
    return c


def main(argv):
    mode, workdir, video_dir = argv[1:4]
    cfg = tiny_config(video_dir)
    if len(argv) > 4:
        port, n, pid = argv[4:7]
        cfg.distributed.coordinator_address = f'127.0.0.1:{port}'
        cfg.distributed.num_processes = int(n)
        cfg.distributed.process_id = int(pid)
        cfg.distributed.initialization_timeout = 60

    from vmae2.runtime import distributed

    distributed.initialize(cfg)

    import jax
    import numpy as np

    from vmae2.core import build
    from vmae2.core import data
    from vmae2.trainers import registry
    from vmae2.trainers.pretrain import Pretrain

    if mode == 'train':
        registry.run(cfg, workdir)
    elif mode == 'reference':
        shards = 2
        real = data.train_dataset

        class Interleaved:
            """Global batch of a `shards`-process run, built in one process."""

            def __init__(self, parts):
                self.parts = parts

            def __iter__(self):
                self.its = [iter(p) for p in self.parts]
                return self

            def __next__(self):
                items = [next(it) for it in self.its]
                return {
                    'video': np.concatenate([x['video'] for x in items]),
                    'skipped': sum(int(x['skipped']) for x in items),
                }

            def get_state(self):
                return [it.get_state() for it in self.its]

            def set_state(self, state):
                for it, s in zip(self.its, state):
                    it.set_state(s)

            def close(self):
                for it in self.its:
                    it.close()

        def train_dataset(cfg, records, transform):
            from data_pipelines import pipeline

            return Interleaved(
                [
                    pipeline.make_train_dataset(
                        records, transform, batch_size=cfg.batch_size // shards, seed=cfg.seed,
                        shard_index=i, shard_count=shards,
                    )
                    for i in range(shards)
                ]
            )

        data.train_dataset = train_dataset
        try:
            registry.run(cfg, workdir)
        finally:
            data.train_dataset = real
    elif mode == 'restore':
        from flax import traverse_util

        from vmae2.runtime import checkpointing

        exp = build.build(cfg, Pretrain(cfg), abstract=True)
        ckpt = checkpointing.Checkpointer(workdir)
        step = ckpt.latest_step()
        state, data_state = ckpt.restore(step, exp.factory.abstract.as_dict())
        files = ckpt.iterator_files(step)
        ckpt.close()
        flat = {
            '/'.join(map(str, k)): v
            for k, v in traverse_util.flatten_dict(jax.device_get(state['params'])).items()
        }
        np.savez(
            os.path.join(workdir, 'restored.npz'),
            step=int(state['step']),
            has_data=data_state is not None,
            files=np.array(files),
            **{f'p/{k}': v for k, v in flat.items()},
        )
    else:
        raise SystemExit(f'unknown mode {mode!r}')
    print(f'worker {mode} done: process {jax.process_index()} of {jax.process_count()}')


if __name__ == '__main__':
    main(sys.argv)
