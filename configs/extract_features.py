"""TAD feature extraction (official extract_tad_feature.py, spec 7).

python main.py --config configs/extract_features.py:thumos14 --workdir W \
    --config.init_from=VIT_G_K710_CHECKPOINT --config.data.video_dir=VIDEOS \
    --config.output_dir=FEATURES
"""

import ml_collections

from configs import common

STEPS = {'thumos14': 4, 'fineaction': 16}  # official: range(0, T - 15, 4 | 16)


def get_config(arg='thumos14'):
    if arg not in STEPS:
        raise ValueError(f'extract_features config {arg!r}: choose one of {sorted(STEPS)}')
    c = ml_collections.ConfigDict()
    c.trainer = 'extract_features'
    c.seed = 0
    c.model = common.model_config('vit_g')  # official: vit_giant_patch14_224, 16 frames
    c.init_from = ''  # vit_g_hybrid_pt_1200e_k710_ft: workdir, converted dir or .pth
    c.num_classes = 0  # 0: the checkpoint head's (unused: features are before the head)
    # video_dir: a folder of videos; or the videos of a TFDS split (tfds_name, ...)
    c.data = ml_collections.ConfigDict(dict(video_dir='', step=STEPS[arg], **common.tfds_fields()))
    c.output_dir = ''  # '' = {workdir}/features
    c.batch_size = 8  # windows per forward (official 1)
    c.normalize = False  # official: /255 only, no ImageNet mean/std (issue #62)
    c.dtype = 'float32'  # official fp32
    return c
