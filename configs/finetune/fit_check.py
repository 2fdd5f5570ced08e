"""The fit check: can fine-tuning fit a few dozen of your own videos?

python main.py --config configs/finetune/fit_check.py:vit_s --workdir W \
    --config.data.data_path=DIR --config.data.data_root=ROOT [--config.init_from=CKPT]

A sanity run before a long fine-tune: with every augmentation and regulariser off
(`common.unregularised`), a ViT fits 32 training videos (taken in turn from each
class) in 60 epochs. At the end the run reports `fit_top1`, the top-1 on those same
videos (one centre view each), and warns below 95 %: then suspect the labels, the
videos or the schedule, not generalisation.

Why everything is off (docs/learning.md, "What kept fine-tuning from fitting"): on
40 made videos (version 1 of data_pipelines.synthetic), 200 steps from scratch with
RandAugment, erasing, mixup and cutmix off, the official rest fitted 77.5 %; the
whole-frame crop alone 92.5 %, the head at init_scale 1 alone 90.0 %, smoothing, drop
path, layer decay and init_scale reset (official crop) 95.0 %, all of them 100 %.
"""

from configs.finetune import common


def get_config(arg='vit_s'):
    variant, _ = common.parse_arg(arg, default_variant='vit_s')
    c = common.finetune_config(variant)
    common.unregularised(c)
    c.data.train_subset = 32
    c.data.num_sample = 1
    c.batch_size = 8  # 4 steps per epoch
    c.optim.base_lr = 0.05  # peak 1.6e-3 at 8 videos per step
    c.optim.min_lr = 1e-3
    c.optim.epochs = 60
    c.optim.warmup_epochs = 5
    c.eval_every = 0
    c.final_test = False
    c.fit_check = True
    c.log_every = 10
    return c
