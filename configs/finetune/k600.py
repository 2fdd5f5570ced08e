"""Kinetics-600 fine-tuning (spec 5.5).

Official: vit_h_k600_ft.sh (its GPUS=1 default is taken as the 32 of the other
H scripts, a likely typo) and vit_g_k710_it_k600_ft.sh (`,it=1`, from a K710
fine-tune with --config.head_label_map=label_710to600.json). B, L and G without
`it` have no K600 script: their K400 scripts are used.
"""

from configs.finetune import common
from configs.finetune import k400

SCRIPTS = dict(k400.SCRIPTS)
SCRIPTS['vit_h'] = common.Script('vit_h_k600_ft.sh', 32, 4, 1e-3, 40, 0.8, 0.2, 0.5, remat=True)
IT_SCRIPT = common.Script(
    'vit_g_k710_it_k600_ft.sh', 32, 3, 1e-5, 3, 0.9, 0.25, weight_decay=0.1, warmup=1, remat=True
)


def get_config(arg=None):
    return common.from_scripts(arg, 600, SCRIPTS, IT_SCRIPT)
