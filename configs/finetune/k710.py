"""Kinetics-710 fine-tuning = post-pre-training (scripts/finetune/vit_{b,h,g}_k710_ft.sh,
spec 5.5 and 8.2).

python main.py --config configs/finetune/k710.py:vit_b --workdir W \
    --config.init_from=PRETRAIN_WORKDIR --config.data.data_path=K710_LISTS \
    --config.data.data_root=ROOT --config.data.label_names=label_map_k710.txt
"""

from configs.finetune import common

SCRIPTS = {
    # --lr 7e-4, 32 GPUs x 16, 90 epochs, layer decay 0.75, drop path 0.1.
    'vit_b': common.Script('vit_b_k710_ft.sh', 32, 16, 7e-4, 90, 0.75, 0.1),
    # 32 x 4, --lr 1e-3, 40 epochs, layer decay 0.8, drop path 0.2, head drop 0.5.
    'vit_h': common.Script('vit_h_k710_ft.sh', 32, 4, 1e-3, 40, 0.8, 0.2, 0.5, remat=True),
    # 32 x 3, --lr 1e-3, 35 epochs, layer decay 0.9, drop path 0.3, wd 0.1, clip_grad 5.0.
    'vit_g': common.Script(
        'vit_g_k710_ft.sh', 32, 3, 1e-3, 35, 0.9, 0.3, weight_decay=0.1, clip_grad=5.0, remat=True
    ),
    # No official K710 script for S and L: S extrapolated from vit_b_k710_ft.sh, L from
    # vit_l_k400_ft.sh (32 x 6, --lr 2e-3, 35 epochs, drop path 0.2).
    'vit_s': common.Script('extrapolated from vit_b_k710_ft.sh', 32, 16, 7e-4, 90, 0.75, 0.1),
    'vit_l': common.Script('extrapolated from vit_l_k400_ft.sh', 32, 6, 2e-3, 35, 0.75, 0.2),
}


def get_config(arg=None):
    return common.from_scripts(arg, 710, SCRIPTS)  # 710 classes: spec 8.2
