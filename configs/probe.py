"""The kNN probe alone on any checkpoint (vmae2/core/probe.py).

python main.py --config configs/probe.py:vit_b --workdir W --config.init_from=CHECKPOINT \
    --config.probe.train_list=TRAIN --config.probe.val_list=VAL --config.probe.data_root=ROOT

A pre-training checkpoint is probed with its encoder's mean-pooled normalised
tokens (the features the probe logs during pre-training); a classifier with its
fc_norm features. Writes probe_knn_top1 to metrics.jsonl.
"""

import ml_collections

from configs import common


def get_config(arg='vit_b'):
    c = ml_collections.ConfigDict()
    c.trainer = 'probe'
    c.seed = 0
    c.model = common.model_config(arg or 'vit_b')
    c.init_from = ''  # a workdir, a converted directory or an official weight file
    c.dtype = 'float32'
    c.mesh = ml_collections.ConfigDict(dict(data=-1))
    c.sharding_rules = ml_collections.ConfigDict(common.SHARDING_RULES)
    c.data = ml_collections.ConfigDict(dict(read_threads=4))
    c.probe = common.probe_config()
    return c
