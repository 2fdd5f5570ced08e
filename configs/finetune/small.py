"""Fine-tuning on a small labelled set (hundreds of videos).

python main.py --config configs/finetune/small.py:vit_b --workdir W \
    --config.data.data_path=DIR --config.data.data_root=ROOT --config.init_from=CKPT

The official recipe (configs/finetune/common.py) with `common.small_data`: mixup
and cutmix off, the RandomResizedCrop kept to at least `SMALL_CROP_MIN` of the
frame, `SMALL_EPOCHS` epochs; RandAugment, erasing, smoothing, drop path and layer
decay stay official. Measured (docs/learning.md "The small-data recipe": 160 made
videos, one pre-trained encoder, two fine-tuning seeds): at 50 epochs this recipe
reached 62-71 % validation top-1 in every run, the official one 26 and 62 %; 25 epochs
stayed at 22.5 %, 100 epochs reached 78-85 %; crop floors 0.08 and 0.4 were within the
seed spread of each other, a full-frame crop once collapsed (24 %).
Run `configs/finetune/fit_check.py` first, and validate (`eval_every`).
num_classes comes from the lists (or set --config.num_classes).
"""

from configs.finetune import common


def get_config(arg='vit_b'):
    variant, _ = common.parse_arg(arg)
    return common.small_data(common.finetune_config(variant))
