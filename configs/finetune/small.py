"""Fine-tuning on a small labelled set (hundreds of videos).

python main.py --config configs/finetune/small.py:vit_b --workdir W \
    --config.data.data_path=DIR --config.data.data_root=ROOT --config.init_from=CKPT

The official recipe (configs/finetune/common.py) with `common.small_data`: mixup
and cutmix off, the RandomResizedCrop kept to at least `SMALL_CROP_MIN` of the
frame, `SMALL_EPOCHS` epochs; RandAugment, erasing, smoothing, drop path and layer
decay stay official. What is measured (docs/learning.md): the 8 % crop slows fitting
(fit ablation); on the learning benchmark's 160 made videos (version 1), 400 steps,
this recipe stayed at chance where the unregularised one reached 21-24 %. The epoch count (twice
the official UCF101 script's 50, for a set 10-30x smaller) is not yet measured.
Run `configs/finetune/fit_check.py` first, and validate (`eval_every`).
num_classes comes from the lists (or set --config.num_classes).
"""

from configs.finetune import common


def get_config(arg='vit_b'):
    variant, _ = common.parse_arg(arg)
    return common.small_data(common.finetune_config(variant))
