"""ViT-B pre-training, official scripts/pretrain/vit_b_hybrid_pt.sh (spec 4.2).

python main.py --config configs/pretrain/vit_b.py --workdir W \
    --config.data.train_list=LIST --config.data.data_root=ROOT
"""

from configs import common


def get_config():
    c = common.pretrain_config('vit_b')
    # 32 GPUs x 32 videos = 1024 videos/step; --lr 1e-3 -> peak 4e-3;
    # 200 epochs x num_sample 4 = "800e"; warmup 20.
    return common.hybrid_script(c, gpus=32, lr=1e-3, epochs=200, warmup_epochs=20)
