"""config.data.reader in the vmae2 stages (pre-training, fine-tuning, evaluation).

These drive the stages on the fast data format; the data side of the same checks
is in tests/data_readers_test.py and tests/data_fast_format_test.py.
"""

import os

import pytest

from data_pipelines import testing
from data_helpers import fast_dataset
from vmae2.tools import make_fast_dataset


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return fast_dataset(str(tmp_path_factory.mktemp('trainer_readers')))


def test_pretraining_reads_the_fast_format_from_config(tmp_path):
    import tiny_configs
    from vmae2.trainers import registry

    raw = tmp_path / 'raw'
    raw.mkdir()
    testing.write_test_video(str(raw / 'a.mp4'), num_frames=48, width=96, height=64)
    testing.write_test_video(str(raw / 'b.mp4'), num_frames=40, width=96, height=64, first_code=20)
    out = str(tmp_path / 'fast')
    make_fast_dataset.convert(str(raw), out, fmt='jpeg-arrayrecord')
    c = tiny_configs.tiny_pretrain_config(out)
    c.data.reader, c.mesh = 'fast', {'data': -1}
    c.optim.total_steps, c.optim.warmup_steps, c.log_every = 2, 1, 1
    last = registry.run(c, str(tmp_path / 'w'))
    assert last['skipped_videos'] == 0 and last['loss'] > 0
    c.data.reader = 'pickle'
    with pytest.raises(ValueError, match="data.reader 'pickle'"):
        registry.run(c, str(tmp_path / 'w2'))


def test_reader_from_config(dataset):
    from configs.finetune import common as ft_common
    from data_pipelines import transforms
    from vmae2.core import data
    from vmae2.trainers.finetune import Finetune

    c = ft_common.finetune_config('vit_s')
    assert c.data.reader == 'video'
    c.data.data_path, c.data.data_root = dataset.lists, dataset.fast['video']
    c.data.reader = 'fast'
    c.batch_size = c.eval_batch_size = 2
    c.model.update(num_frames=4, input_size=32)
    labelled = data.labelled_data(c)
    assert [r.path for r in labelled.val] == [
        os.path.join(dataset.fast['video'], f'cls{v}', f'v{v}.mp4') for v in range(2)
    ]
    assert labelled.num_classes == 2
    c.data.update(num_sample=1, rand_augment=False, reprob=0.0)
    stage = Finetune(c)
    train = data.train_dataset(c, labelled.train, stage.train_transform(labelled.train))
    batch = next(iter(train))
    assert batch['video'].shape == (2, 4, 32, 32, 3) and int(batch['skipped']) == 0
    view = transforms.EvalTransform(
        num_frames=4, input_size=32, mode='val', reader=data.reader(c)
    )
    (val,) = list(data.eval_dataset(c, labelled.val, view, 2))
    assert val['valid'].tolist() == [True, True]

    c.data.reader = 'pickle'
    with pytest.raises(ValueError, match="data.reader 'pickle'"):
        data.labelled_data(c)
