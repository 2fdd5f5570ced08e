"""ViT-L pre-training, official scripts/pretrain/vit_l_hybrid_pt.sh (spec 4.2).

python main.py --config configs/pretrain/vit_l.py --workdir W \
    --config.data.train_list=LIST --config.data.data_root=ROOT
"""

from configs import common


def get_config():
    c = common.pretrain_config('vit_l')
    # 48 GPUs x 32 = 1536 videos/step; --lr 1e-3 -> peak 6e-3; 300 epochs ("1200e").
    c = common.hybrid_script(c, gpus=48, lr=1e-3, epochs=300, warmup_epochs=30)
    c.mesh = {'data': 1, 'fsdp': -1}  # FSDP for L/H/g
    return c
