"""HMDB51 fine-tuning from a K710 fine-tune (scripts/finetune/vit_g_k710_it_hmdb51_ft.sh,
spec 5.5). Argument `vit_g,split=1` (split 1-3); sampling rate 2.
"""

from configs.finetune import common

# 8 GPUs x 3, --lr 5e-4, 15 epochs, layer decay 0.9, drop path 0.35, head drop 0.5, rate 2.
G = common.Script(
    'vit_g_k710_it_hmdb51_ft.sh', 8, 3, 5e-4, 15, 0.9, 0.35, 0.5, sampling_rate=2, remat=True
)


def get_config(arg=None):
    return common.from_g_script(arg, 51, G)
