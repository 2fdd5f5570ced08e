"""Every config builds, carries the official recipe numbers, and gives a ModelConfig."""

import importlib

import pytest

from configs import evaluate as evaluate_config
from configs import extract_features as features_config
from configs.distill import k710 as distill_config
from configs.finetune import common as ft_common
from configs.finetune import hmdb51, k400, k600, k710, ssv2, ucf101
from vmae2.core import optim
from vmae2.models.config import ModelConfig


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
    assert ModelConfig.from_config(c).patch_size == 14


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
    assert ModelConfig.from_config(c).variant == c.model.variant
    schedule = optim.schedule_from_config(c, steps_per_epoch=10)
    assert schedule.total_steps > 0 and schedule.peak_lr > 0
    c.lock()
    with pytest.raises(AttributeError):
        c.no_such_field = 1  # a typo in an override fails instead of being ignored


@pytest.mark.parametrize('module', [k710, k400, k600, ssv2, ucf101, hmdb51])
@pytest.mark.parametrize('variant', ['vit_s', 'vit_b', 'vit_l', 'vit_h', 'vit_g'])
def test_every_finetune_config_builds(module, variant):
    c = module.get_config(variant + (',split=2' if module in (ucf101, hmdb51) else ''))
    assert c.trainer == 'finetune' and c.script and c.batch_size > 0


def test_configs_carry_the_script_numbers():
    g = k710.get_config('vit_g')
    assert (g.batch_size, g.optim.base_lr, g.optim.layer_decay, g.optim.clip_grad) == (
        96,
        1e-3,
        0.9,
        5.0,
    )
    assert g.model.drop_path_rate == 0.3 and g.optim.weight_decay == 0.1
    s = ssv2.get_config('vit_b')
    assert s.data.sampler == 'tsn' and not s.data.flip and s.data.test_num_segment == 2
    assert s.optim.layer_decay == 0.65
    it = k400.get_config('vit_g,it=1')
    assert it.optim.base_lr == 1e-5 and it.optim.epochs == 3 and it.optim.warmup_epochs == 1
    assert hmdb51.get_config('vit_g,split=3').data.sampling_rate == 2
    assert evaluate_config.get_config('ssv2').trainer == 'evaluate'
    assert features_config.get_config('fineaction').data.step == 16
    assert distill_config.get_config('vit_s').trainer == 'distill'
    with pytest.raises(ValueError):
        ft_common.parse_arg('vit_x')
