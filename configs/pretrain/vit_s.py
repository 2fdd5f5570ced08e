"""ViT-S pre-training.

The official repo has no ViT-S pre-training script (its ViT-S weights are
distilled, spec 4.2/6); this uses the ViT-B hybrid recipe unchanged
(scripts/pretrain/vit_b_hybrid_pt.sh) with the ViT-S model (decoder 192 wide).

python main.py --config configs/pretrain/vit_s.py --workdir W \
    --config.data.train_list=LIST --config.data.data_root=ROOT
"""

from configs import common


def get_config():
    c = common.pretrain_config('vit_s')
    return common.hybrid_script(c, gpus=32, lr=1e-3, epochs=200, warmup_epochs=20)
