"""Pretrain -> fine-tune -> evaluate on a small made labelled video set, and the
same fine-tune from scratch beside it (CPU, minutes).

python -m bench.finetune_chain --out /tmp/chain [--pretrain-steps 300 --finetune-steps 150]

Videos: a coloured square moving right, left or down (3 classes) over a random
background, random colours and start positions, so only the motion tells the
class. Horizontal flip is off (it would swap left and right; like SSv2).
Everything else is the official fine-tuning recipe at a tiny size: 8 frames at
32x32, a 4-block 64-wide ViT, RandAugment, random erasing, mixup/cutmix,
smoothing, layer decay 0.75, drop path 0.1, 2 x 3 test views.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

import av
import numpy as np

CLASSES = ('right', 'left', 'down')


def write_motion_video(path: str, label: int, rng: np.random.Generator, frames: int = 24):
    h = w = 48
    bg = rng.integers(0, 256, 3)
    fg = (bg + 128 + rng.integers(-40, 40, 3)) % 256
    size = 12
    y, x = rng.integers(4, h - size - 4), rng.integers(4, w - size - 4)
    speed = 1.5
    with av.open(path, mode='w') as c:
        s = c.add_stream('mpeg4', rate=25)
        s.width, s.height, s.pix_fmt = w, h, 'yuv420p'
        for k in range(frames):
            dy, dx = {0: (0, speed * k), 1: (0, -speed * k), 2: (speed * k, 0)}[label]
            img = np.empty((h, w, 3), np.uint8)
            img[...] = bg
            yy = int(round(y + dy)) % (h - size)
            xx = int(round(x + dx)) % (w - size)
            img[yy : yy + size, xx : xx + size] = fg
            for p in s.encode(av.VideoFrame.from_ndarray(img, format='rgb24')):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def make_dataset(root: str, per_class_train: int, per_class_val: int, seed: int = 0) -> str:
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (('train', per_class_train), ('val', per_class_val)):
        lines = []
        for label in range(len(CLASSES)):
            for i in range(n):
                name = f'{split}_{CLASSES[label]}_{i}.mp4'
                if not os.path.exists(os.path.join(root, name)):
                    write_motion_video(os.path.join(root, name), label, rng)
                lines.append(f'{name} {label}')
        with open(os.path.join(root, f'{split}.csv'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    with open(os.path.join(root, 'names.txt'), 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')
    return root


MODEL = dict(width=64, depth=4, num_heads=4, mlp_dim=256, patch_size=8)
MODEL.update(decoder_width=32, decoder_num_heads=2, decoder_mlp_dim=128)


def shrink(c):
    c.model.num_frames = 8
    c.model.input_size = 32
    c.model.decoder_depth = 1
    c.model.overrides = dict(MODEL)
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='/tmp/vmae2_chain')
    ap.add_argument('--pretrain-steps', type=int, default=300)
    ap.add_argument('--finetune-steps', type=int, default=150)
    ap.add_argument('--train-per-class', type=int, default=16)
    ap.add_argument('--val-per-class', type=int, default=8)
    ap.add_argument(
        '--aug',
        choices=('official', 'light'),
        default='official',
        help='light: no RandAugment, random erasing, mixup/cutmix (crop and smoothing kept)',
    )
    ap.add_argument('--lr', type=float, default=0.05, help='base lr (x batch 8 / 256)')
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger('vmae2').setLevel(logging.INFO)

    from configs import common as config_common
    from configs import evaluate as evaluate_config
    from configs.finetune import common as ft_common
    from vmae2.trainers import registry

    data = make_dataset(os.path.join(args.out, 'data'), args.train_per_class, args.val_per_class)

    pre = shrink(config_common.pretrain_config('vit_s'))
    pre.data.video_dir = ''
    train_list = os.path.join(args.out, 'pretrain_list.txt')
    with open(os.path.join(data, 'train.csv')) as f, open(train_list, 'w') as g:
        g.writelines(f'{line.split()[0]} 0 -1\n' for line in f if line.strip())
    pre.data.train_list = train_list
    pre.data.data_root = data
    pre.data.sampling_rate = 2
    pre.data.num_sample = 2
    pre.batch_size = 8
    pre.optim.base_lr = 0.05  # peak 1.6e-3 at 8 videos per step
    pre.optim.min_lr = 1e-3
    pre.optim.total_steps = args.pretrain_steps
    pre.optim.warmup_steps = args.pretrain_steps // 10
    pre.log_every = 50
    pre.checkpoint_every = 10_000
    pre_dir = os.path.join(args.out, 'pretrain')
    registry.run(pre, pre_dir)  # a finished workdir is reused as is

    def finetune(init: str, name: str) -> dict:
        c = shrink(ft_common.finetune_config('vit_s'))
        c.data.data_path = data
        c.data.data_root = data
        c.data.label_names = os.path.join(data, 'names.txt')
        c.data.sampling_rate = 2
        c.data.flip = False
        c.data.test_num_segment = 2
        c.data.test_num_crop = 3
        c.data.read_threads = 2
        c.batch_size = 8
        c.eval_batch_size = 16
        c.optim.base_lr = args.lr  # 0.05: peak 1.6e-3
        if args.aug == 'light':
            c.data.rand_augment = False
            c.data.reprob = 0.0
            c.augment.mixup = c.augment.cutmix = 0.0
        c.optim.min_lr = 1e-3
        c.optim.total_steps = args.finetune_steps
        c.optim.warmup_steps = args.finetune_steps // 10
        c.log_every = 25
        c.eval_every = max(args.finetune_steps // 3, 1)
        c.checkpoint_every = 10_000
        c.init_from = init
        return registry.run(c, os.path.join(args.out, name))

    from_pre = finetune(pre_dir, f'finetune_from_pretrain_{args.aug}')
    scratch = finetune('', f'finetune_from_scratch_{args.aug}')

    ev = shrink(evaluate_config.get_config('k400,vit_s'))
    ev.num_classes = 0
    ev.init_from = os.path.join(args.out, f'finetune_from_pretrain_{args.aug}')
    ev.data.data_path = ev.data.data_root = data
    ev.data.label_names = os.path.join(data, 'names.txt')
    ev.data.sampling_rate = 2
    ev.data.test_num_segment = 2
    ev.data.test_num_crop = 3
    ev.eval_batch_size = 16
    evaluated = registry.run(ev, os.path.join(args.out, f'evaluate_{args.aug}'))

    summary = {
        'videos': {'train': 3 * args.train_per_class, 'val': 3 * args.val_per_class},
        'aug': args.aug,
        'steps': {'pretrain': args.pretrain_steps, 'finetune': args.finetune_steps},
        'from_pretrain': {k: from_pre[k] for k in ('loss', 'test_top1', 'test_top5')},
        'from_scratch': {k: scratch[k] for k in ('loss', 'test_top1', 'test_top5')},
        'evaluate_trainer': {k: evaluated[k] for k in ('test_top1', 'test_top5')},
    }
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
