"""ViT-g pre-training, official scripts/pretrain/vit_g_hybrid_pt.sh (spec 4.2).

python main.py --config configs/pretrain/vit_g.py --workdir W \
    --config.data.train_list=LIST --config.data.data_root=ROOT
"""

from configs import common


def get_config():
    c = common.pretrain_config('vit_g')
    # 64 GPUs x 32 = 2048 videos/step; --lr 6e-4 -> peak 4.8e-3, min_lr 8e-5;
    # 300 epochs ("1200e"); --clip_grad 0.02; --with_checkpoint.
    c = common.hybrid_script(
        c, gpus=64, lr=6e-4, epochs=300, warmup_epochs=30, clip_grad=0.02, remat=True
    )
    c.mesh = {'data': 1, 'fsdp': -1}
    return c
