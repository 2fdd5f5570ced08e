"""ViT-H pre-training, official scripts/pretrain/vit_h_hybrid_pt.sh (spec 4.2).

python main.py --config configs/pretrain/vit_h.py --workdir W \
    --config.data.train_list=LIST --config.data.data_root=ROOT
"""

from configs import common


def get_config():
    c = common.pretrain_config('vit_h')
    # 64 GPUs x 32 = 2048 videos/step; --lr 1e-3 -> peak 8e-3; 300 epochs; the
    # script turns on gradient checkpointing (--with_checkpoint).
    c = common.hybrid_script(c, gpus=64, lr=1e-3, epochs=300, warmup_epochs=30, remat=True)
    c.mesh = {'data': 1, 'fsdp': -1}
    return c
