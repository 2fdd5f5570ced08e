"""Each clip reaches the training step with its own label: through the shuffle, the
repeated augmentation (num_sample clips of one video), the per-process shards, the
global batch on 8 devices and the step's device-side preparation."""

import jax
import jax.numpy as jnp
import numpy as np

from configs.finetune import common as ft_common
from data_pipelines import pipeline
from data_pipelines import testing as data_testing
from vmae2.runtime import sharding
from vmae2.trainers.finetune import Finetune

FRAMES = 8  # video v shows colour codes 8v .. 8v+7, so any frame names its video


def test_every_clip_on_the_device_carries_its_videos_label(tmp_path):
    lines = []
    for v in range(8):
        data_testing.write_test_video(
            str(tmp_path / f'v{v}.mp4'), num_frames=FRAMES, width=64, height=48, first_code=FRAMES * v
        )
        lines.append(f'v{v}.mp4 {v}')  # label = video index
    for split in ('train', 'val'):
        (tmp_path / f'{split}.csv').write_text('\n'.join(lines) + '\n')
    c = ft_common.finetune_config('vit_s')
    c.data.update(data_path=str(tmp_path), data_root=str(tmp_path), sampling_rate=1)
    # Colour-preserving augmentation only (RandAugment would change the codes).
    c.data.update(rand_augment=False, flip=True, reprob=0.0, num_sample=2)
    c.model.update(num_frames=4, input_size=32)
    c.mesh = {'data': -1}
    stage = Finetune(c)
    records = stage.train_records()
    transform = stage.train_transform(records)
    # Two processes' shards of the same shuffled stream, batched as the step sees them.
    shards = [
        iter(pipeline.make_train_dataset(records, transform, batch_size=2, seed=3, shard_index=i, shard_count=2))
        for i in range(2)
    ]
    mesh = sharding.make_mesh({'data': -1})

    @jax.jit
    def on_device(key, batch):
        prepared, _ = stage.prepare(key, batch)
        mean_colour = batch['video'].astype(jnp.float32).mean(axis=(2, 3))  # [B, T, 3]
        return prepared['label'], mean_colour

    seen = set()
    for step in range(6):  # 6 steps x 2 shards x 2 videos: three epochs of 8
        parts = [next(s) for s in shards]
        local = {k: np.concatenate([p[k] for p in parts]) for k in ('video', 'label', 'erase_box')}
        labels, colours = on_device(jax.random.key(step), sharding.global_batch(local, mesh))
        labels, colours = np.asarray(labels), np.asarray(colours)
        for row in range(len(labels)):
            clip = np.broadcast_to(colours[row][:, None, None, :], (4, 2, 2, 3))
            video = data_testing.identify_frames(clip.astype(np.uint8)) // FRAMES
            assert set(video.tolist()) == {labels[row]}, (step, row, video, labels[row])
        # Repeated augmentation: a video's two clips are consecutive rows.
        assert np.array_equal(labels[0::2], labels[1::2])
        seen.update(labels.tolist())
    assert seen == set(range(8))
