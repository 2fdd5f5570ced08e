"""Kinetics-400 fine-tuning (scripts/finetune/vit_{b,l,h,g}_k400_ft.sh, spec 5.5).

Argument: variant, optionally `,it=1` for the intermediate-tuned run from a K710
fine-tune (vit_g_k710_it_k400_ft.sh; needs --config.init_from=K710_WORKDIR and
--config.head_label_map=label_710to400.json).
"""

from configs.finetune import common

SCRIPTS = {
    'vit_b': common.Script('vit_b_k400_ft.sh', 32, 16, 7e-4, 90, 0.75, 0.1),
    'vit_l': common.Script('vit_l_k400_ft.sh', 32, 6, 2e-3, 35, 0.75, 0.2),
    'vit_h': common.Script('vit_h_k400_ft.sh', 32, 4, 1e-3, 40, 0.8, 0.2, 0.5, remat=True),
    'vit_g': common.Script(
        'vit_g_k400_ft.sh', 64, 3, 1e-3, 30, 0.9, 0.2, weight_decay=0.1, remat=True
    ),
    # No ViT-S script (spec 5.5): extrapolated from vit_b_k400_ft.sh.
    'vit_s': common.Script('extrapolated from vit_b_k400_ft.sh', 32, 16, 7e-4, 90, 0.75, 0.1),
}

# vit_g_k710_it_k400_ft.sh: 32 x 3, --lr 1e-5, 3 epochs, warmup 1, drop path 0.25, wd 0.1.
IT_SCRIPT = common.Script(
    'vit_g_k710_it_k400_ft.sh', 32, 3, 1e-5, 3, 0.9, 0.25, weight_decay=0.1, warmup=1, remat=True
)


def get_config(arg=None):
    return common.from_scripts(arg, 400, SCRIPTS, IT_SCRIPT)
