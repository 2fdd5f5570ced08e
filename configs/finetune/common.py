"""Fine-tuning config pieces: the defaults of the official run_class_finetuning.py
(spec 5.1) and the per-script numbers of scripts/finetune/*.sh (spec 5.5).

A config file calls `finetune_config(variant)` and `apply_script(c, SCRIPT)`;
`parse_arg('vit_g,split=1')` reads the config argument.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from configs import common

VARIANTS = ('vit_s', 'vit_b', 'vit_l', 'vit_h', 'vit_g')


def parse_arg(arg: str | None, default_variant: str = 'vit_b') -> tuple[str, dict[str, str]]:
    """'vit_g,split=1,it=1' -> ('vit_g', {'split': '1', 'it': '1'}).

    Raises:
      ValueError: an unknown variant or a malformed option.
    """
    parts = [p.strip() for p in (arg or default_variant).split(',') if p.strip()]
    variant, opts = parts[0], {}
    if variant not in VARIANTS:
        raise ValueError(f'config argument {arg!r}: first part must be one of {VARIANTS}')
    for p in parts[1:]:
        if '=' not in p:
            raise ValueError(f'config argument {arg!r}: options are key=value, got {p!r}')
        k, v = p.split('=', 1)
        opts[k.strip()] = v.strip()
    return variant, opts


def finetune_config(variant: str) -> ml_collections.ConfigDict:
    """Defaults of the official run_class_finetuning.py (spec 5.1)."""
    c = ml_collections.ConfigDict()
    c.trainer = 'finetune'
    c.seed = 0
    c.model = common.model_config(variant)
    c.model.drop_path_rate = 0.1  # official --drop_path 0.1
    c.model.head_drop_rate = 0.0  # official --head_drop_rate 0
    c.model.init_scale = 0.001  # official --init_scale 0.001 (spec 1.6)
    c.num_classes = 0  # 0: from label_names / the data (official --nb_classes, issue #30)
    c.init_from = ''  # workdir, converted dir (vmae2.convert) or official .pth (spec 9.3)
    c.head_label_map = ''  # JSON list, e.g. misc/label_710to400.json (spec 8.2)
    c.data = ml_collections.ConfigDict(
        dict(
            data_path='',  # folder with train.csv and val.csv (`video_path label`, spec 8.1)
            data_root='',  # prepended to every list path (official --data_root)
            label_names='',  # optional class-name file, one per line (misc/label_map_k710.txt)
            sampler='dense',  # dense (Kinetics/UCF/HMDB) | tsn (SSv2), spec 5.3
            sampling_rate=4,  # official --sampling_rate 4
            num_sample=2,  # official --num_sample 2 (repeated augmentation)
            train_subset=0,  # >0: train on this many videos, classes in turn (0 = all)
            rand_augment=True,  # official --aa rand-m7-n4-mstd0.5-inc1
            flip=True,  # official: flip except --data_set SSV2
            reprob=0.25,  # official --reprob 0.25 (--remode pixel --recount 1)
            # RandomResizedCrop area range (official: (0.08, 1.0) hard-coded in
            # video_classification.py); (1.0, 1.0) keeps the whole frame
            crop_scale=(0.08, 1.0),
            test_num_segment=5,  # scripts: --test_num_segment 5 (SSv2: 2); default 10
            test_num_crop=3,  # official --test_num_crop 3
            worker_count=0,  # grain worker processes (0 = decode in the main process)
            read_threads=4,  # eval videos decoded in parallel threads
            # replaces data_path: validation and the test protocol read tfds_eval_split
            **common.tfds_fields(tfds_eval_split='val'),
            **common.augment_fields(),
        )
    )
    c.augment = ml_collections.ConfigDict(
        dict(
            mixup=0.8,  # official --mixup 0.8
            cutmix=1.0,  # official --cutmix 1.0
            mixup_prob=1.0,  # official --mixup_prob 1.0
            mixup_switch_prob=0.5,  # official --mixup_switch_prob 0.5 (mode batch)
            smoothing=0.1,  # official --smoothing 0.1
        )
    )
    # Videos per step over all processes (official batch_size x GPUs x update_freq);
    # the tensor batch is batch_size * num_sample clips; lr scales with batch_size.
    c.batch_size = 64  # official default --batch_size 64
    c.eval_batch_size = 64  # clips (views) per evaluation step over all processes
    c.optim = ml_collections.ConfigDict(
        dict(
            base_lr=1e-3,  # official --lr 1e-3; peak = base_lr * batch_size / 256
            min_lr=1e-6,  # official --min_lr 1e-6, scaled like lr
            epochs=30,  # official default --epochs 30
            warmup_epochs=5,  # official --warmup_epochs 5 (warmup from 0)
            total_steps=0,  # >0 overrides epochs * steps_per_epoch
            warmup_steps=-1,  # >=0 overrides warmup_epochs * steps_per_epoch
            weight_decay=0.05,  # official --weight_decay 0.05
            b1=0.9,  # DeepSpeed Adam betas hard-coded (0.9, 0.999), spec 5.1
            b2=0.999,
            eps=1e-8,  # official --opt_eps 1e-8
            clip_grad=0.0,  # 0 = none (official --clip_grad None)
            layer_decay=0.75,  # official --layer_decay 0.75 (spec 5.1)
        )
    )
    c.grad_accum_steps = 1  # official --update_freq
    c.dtype = 'float32'  # compute dtype: float32 or bfloat16 (official: fp16 DeepSpeed)
    c.mesh = ml_collections.ConfigDict(dict(data=-1))
    c.sharding_rules = ml_collections.ConfigDict()
    c.log_every = 20
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.eval_every = 0  # steps between 1-view validations (0: none during training)
    c.final_test = True  # full test protocol at the end (spec 5.4)
    c.fit_check = False  # at the end, top-1 on the training videos (configs/finetune/fit_check.py)
    c.script = ''  # the official script the numbers come from
    return c


@dataclasses.dataclass(frozen=True)
class Script:
    """One row of the spec 5.5 table (scripts/finetune/<name>.sh)."""

    name: str  # the official script (or 'extrapolated from <script>')
    gpus: int
    per_gpu: int
    lr: float
    epochs: int
    layer_decay: float
    drop_path: float
    head_drop: float = 0.0
    weight_decay: float = 0.05
    warmup: int = 5
    sampling_rate: int = 4
    test_num_segment: int = 5
    clip_grad: float = 0.0
    remat: bool = False


def apply_script(c: ml_collections.ConfigDict, s: Script) -> ml_collections.ConfigDict:
    """Copies a script row into the config (batch_size = GPUs x per-GPU videos)."""
    c.batch_size = s.gpus * s.per_gpu
    c.optim.base_lr = s.lr
    c.optim.epochs = s.epochs
    c.optim.warmup_epochs = s.warmup
    c.optim.layer_decay = s.layer_decay
    c.optim.weight_decay = s.weight_decay
    c.optim.clip_grad = s.clip_grad
    c.model.drop_path_rate = s.drop_path
    c.model.head_drop_rate = s.head_drop
    c.data.sampling_rate = s.sampling_rate
    c.data.test_num_segment = s.test_num_segment
    if s.remat:  # the giant scripts' --with_checkpoint
        c.model.remat_policy = 'full'
    c.script = s.name
    return c


def unregularised(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Every augmentation and regulariser off (the fit check): RandAugment, flip, erasing,
    mixup, cutmix, label smoothing, drop path, layer decay; the crop keeps the whole
    frame (data.crop_scale (1, 1)); the head starts at the standard init (init_scale 1:
    the official 0.001 was measured to slow fitting, docs/learning.md)."""
    c.data.update(rand_augment=False, flip=False, reprob=0.0, crop_scale=(1.0, 1.0))
    c.augment.update(mixup=0.0, cutmix=0.0, smoothing=0.0)
    c.model.update(drop_path_rate=0.0, init_scale=1.0)
    c.optim.layer_decay = 1.0
    return c


def small_data(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The small-dataset variant (hundreds of videos): mixup and cutmix off, the crop at
    least SMALL_CROP_MIN of the frame, SMALL_EPOCHS epochs (configs/finetune/small.py
    says what is measured and what is not)."""
    c.data.crop_scale = (SMALL_CROP_MIN, 1.0)
    c.augment.update(mixup=0.0, cutmix=0.0)
    c.optim.epochs = SMALL_EPOCHS
    return c


# Measured on 160 made videos (docs/learning.md "The small-data recipe"): floors 0.08 and
# 0.4 tie within the seed spread, 1.0 once collapsed; 0.4 because the 8 % crop slows
# fitting (fit ablation). Epochs: 25 -> 22.5 %, 50 -> 62-71 %, 100 -> 78-85 %.
SMALL_CROP_MIN = 0.4
SMALL_EPOCHS = 100


def ssv2(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """SSv2 data: TSN 16 segments (rate unused), no flip, 2 x 3 test views (spec 5.3-5.5)."""
    c.data.sampler = 'tsn'
    c.data.flip = False
    c.data.test_num_segment = 2
    return c


def from_scripts(arg, num_classes: int, scripts: dict, it_script: Script | None = None):
    """The config of a dataset with a script per size: `arg` is 'vit_b', or 'vit_g,it=1'
    for the intermediate-tuned run from a K710 fine-tune (`it_script`; other sizes
    keep it and the layer decay of their own script)."""
    variant, opts = parse_arg(arg)
    c = finetune_config(variant)
    c.num_classes = num_classes
    if opts.get('it') == '1' and it_script is not None:
        c = apply_script(c, it_script)
        c.optim.layer_decay = scripts[variant].layer_decay
        return c
    return apply_script(c, scripts[variant])


# Layer decay of each size's K710 script, for the small datasets whose only script
# is the g one (spec 5.5).
K710_LAYER_DECAY = {'vit_s': 0.75, 'vit_b': 0.75, 'vit_l': 0.75, 'vit_h': 0.8, 'vit_g': 0.9}


def from_g_script(arg, num_classes: int, g_script: Script):
    """A small dataset fine-tuned from K710 (UCF101, HMDB51): `arg` 'vit_g,split=1'.

    Sizes other than g take the g script with their K710 layer decay; H and g keep
    its activation checkpointing.
    """
    variant, opts = parse_arg(arg)
    c = apply_script(finetune_config(variant), g_script)
    c.num_classes = num_classes
    c.optim.layer_decay = K710_LAYER_DECAY[variant]
    c.model.remat_policy = 'full' if variant in ('vit_h', 'vit_g') else 'none'
    c.data.split = int(opts.get('split', 1))
    return c
