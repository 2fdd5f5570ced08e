"""UCF101 fine-tuning from a K710 fine-tune (scripts/finetune/vit_g_k710_it_ucf101_ft.sh,
spec 5.5). Argument `vit_g,split=1` (split 1-3, the script's SPLIT): point
--config.data.data_path at that split's list folder; --config.init_from at the K710
workdir (its 710-class head is dropped and re-initialised).
"""

from configs.finetune import common

# 8 GPUs x 3, --lr 1e-3, 50 epochs, layer decay 0.9, drop path 0.35, head drop 0.5.
G = common.Script('vit_g_k710_it_ucf101_ft.sh', 8, 3, 1e-3, 50, 0.9, 0.35, 0.5, remat=True)


def get_config(arg=None):
    return common.from_g_script(arg, 101, G)
