"""Every pre-training config builds and carries the official recipe numbers."""

import importlib

import pytest

from vmae2 import optim
from vmae2.models import pretrain as pretrain_model
from vmae2.trainers import common


def load(name):
    return importlib.import_module(f'configs.{name}').get_config()


# Spec 4.2: GPUs x 32 videos, --lr, epochs, warmup, clip_grad.
@pytest.mark.parametrize(
    'name,batch,lr,peak,epochs,warmup,clip',
    [
        ('pretrain.vit_b', 1024, 1e-3, 4e-3, 200, 20, 0.0),
        ('pretrain.vit_l', 1536, 1e-3, 6e-3, 300, 30, 0.0),
        ('pretrain.vit_h', 2048, 1e-3, 8e-3, 300, 30, 0.0),
        ('pretrain.vit_g', 2048, 6e-4, 4.8e-3, 300, 30, 0.02),
    ],
)
def test_pretrain_recipes(name, batch, lr, peak, epochs, warmup, clip):
    c = load(name)
    assert c.batch_size == batch and c.optim.base_lr == lr
    assert optim.scaled_lr(c.optim.base_lr, c.batch_size) == pytest.approx(peak)
    assert (c.optim.epochs, c.optim.warmup_epochs, c.optim.clip_grad) == (epochs, warmup, clip)
    assert (c.optim.b1, c.optim.b2, c.optim.weight_decay) == (0.9, 0.95, 0.05)
    assert c.data.num_sample == 4 and c.data.sampling_rate == 4
    assert c.masking.mask_type == 'tube' and c.masking.mask_ratio == 0.9
    assert c.masking.decoder_mask_type == 'run_cell' and c.masking.decoder_mask_ratio == 0.5
    assert c.model.decoder_depth == 4 and c.model.num_frames == 16


def test_giant_min_lr_and_remat():
    c = load('pretrain.vit_g')
    assert optim.scaled_lr(c.optim.min_lr, c.batch_size) == pytest.approx(8e-5)  # spec 4.2
    assert c.model.remat_policy == 'full'  # the script's --with_checkpoint
    assert common.model_spec(c).arch.patch_size == 14


@pytest.mark.parametrize(
    'name',
    [
        'demo',
        'pretrain.vit_s',
        'pretrain.vit_b',
        'pretrain.vit_l',
        'pretrain.vit_h',
        'pretrain.vit_g',
    ],
)
def test_configs_build_a_model_spec(name):
    c = load(name)
    spec = common.model_spec(c)
    assert isinstance(spec, pretrain_model.PretrainSpec)
    sched, total, peak = common.make_schedule(c, steps_per_epoch=10)
    assert total > 0 and peak > 0
    c.lock()
    with pytest.raises(AttributeError):
        c.no_such_field = 1  # a typo in an override fails instead of being ignored
