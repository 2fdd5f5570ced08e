"""Test protocol only (spec 5.4) on any classifier checkpoint.

python main.py --config configs/evaluate.py:k400 --workdir W \
    --config.init_from=CHECKPOINT --config.model.variant=vit_b \
    --config.data.data_path=LISTS --config.data.data_root=ROOT

Argument: k400 | k600 | k710 | ssv2 | ucf101 | hmdb51 (the dataset's views,
sampler and class count; spec 5.5: 5 x 3 Kinetics/UCF/HMDB, 2 x 3 SSv2), optionally
followed by `,vit_g` for the model size.
"""

from configs.finetune import common

DATASETS = {
    'k400': dict(num_classes=400),
    'k600': dict(num_classes=600),
    'k710': dict(num_classes=710),
    'ssv2': dict(num_classes=174),
    'ucf101': dict(num_classes=101),
    'hmdb51': dict(num_classes=51, sampling_rate=2),
}


def get_config(arg='k400'):
    parts = [p.strip() for p in (arg or 'k400').split(',')]
    name = parts[0]
    if name not in DATASETS:
        raise ValueError(f'evaluate config {arg!r}: choose one of {sorted(DATASETS)}')
    variant = parts[1] if len(parts) > 1 else 'vit_b'
    c = common.finetune_config(variant)
    c.trainer = 'evaluate'
    d = DATASETS[name]
    c.num_classes = d['num_classes']
    c.data.sampling_rate = d.get('sampling_rate', 4)
    if name == 'ssv2':
        common.ssv2(c)
    c.model.drop_path_rate = 0.0
    return c
