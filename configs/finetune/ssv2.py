"""Something-Something V2 fine-tuning (scripts/finetune/vit_{b,l,h,g}_ssv2_ft.sh, spec 5.5).

Raw frames: --config.data.data_path holds train.csv/val.csv with
`frame_folder total_frames label` lines; TSN sampling, no flip, 2 x 3 test views.
"""

from configs.finetune import common

SCRIPTS = {
    'vit_b': common.Script('vit_b_ssv2_ft.sh', 16, 16, 2e-3, 25, 0.65, 0.1),
    'vit_l': common.Script('vit_l_ssv2_ft.sh', 32, 6, 5e-4, 20, 0.75, 0.2),
    'vit_h': common.Script('vit_h_ssv2_ft.sh', 32, 4, 5e-4, 20, 0.8, 0.2, remat=True),
    'vit_g': common.Script('vit_g_ssv2_ft.sh', 32, 3, 3e-4, 20, 0.9, 0.25, remat=True),
    'vit_s': common.Script('extrapolated from vit_b_ssv2_ft.sh', 16, 16, 2e-3, 25, 0.65, 0.1),
}


def get_config(arg=None):
    return common.ssv2(common.from_scripts(arg, 174, SCRIPTS))
