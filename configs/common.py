"""Shared config pieces. Numbers carry their source (spec = ../shared/reference/official_repo.md)."""

from __future__ import annotations

import ml_collections


# Logical axis -> mesh axis (vmae2/sharding.py, docs/scaling.md). A rule naming an
# axis the mesh lacks is inert, so these defaults give pure data parallelism with
# the default mesh {'data': -1} (ViT-S/B), FSDP with {'data': 1, 'fsdp': -1}
# (ViT-L/H/g: the width 'embed' is in every large kernel; an FSDP split that does
# not divide moves to another dimension), and Megatron-style tensor parallelism
# once the mesh has a 'tensor' axis, e.g. {'data': 1, 'fsdp': -1, 'tensor': 2}.
SHARDING_RULES = dict(embed='fsdp', qkv='tensor', heads='tensor', mlp='tensor')


def distributed_config() -> ml_collections.ConfigDict:
    """Multi-process start-up (vmae2/distributed.py); empty fields fall back to the
    JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID environment and
    then to JAX's SLURM / MPI / Cloud TPU detection."""
    return ml_collections.ConfigDict(
        dict(
            mode='auto',  # auto | on (always call jax.distributed.initialize) | off
            coordinator_address='',  # host:port of process 0
            num_processes=0,  # 0 = from the environment / scheduler
            process_id=-1,  # -1 = from the environment / scheduler
            initialization_timeout=300,  # seconds to wait for every process
        )
    )


def probe_config() -> ml_collections.ConfigDict:
    """The kNN probe of frozen features (vmae2/core/probe.py); off until both lists are set."""
    return ml_collections.ConfigDict(
        dict(
            train_list='',  # fine-tuning list format: `path label` per line
            val_list='',
            data_root='',  # joined in front of the lists' paths
            every=0,  # steps between probes during pre-training (always: step 0, the end)
            k=20,  # neighbours that vote (DINO eval_knn default)
            temperature=0.07,  # vote weight exp(cosine / T) (DINO default)
            batch_size=32,  # clips per feature step over all processes
            sampling_rate=4,  # the validation view's dense sampler, as fine-tuning
            sampler='dense',  # dense | tsn
        )
    )


def tfds_fields(**splits) -> dict:
    """A TFDS dataset as the data (python -m vmae2.tools.build_dataset); set, it replaces
    the lists and folders."""
    return dict(
        tfds_name='',  # e.g. ucf101, ucf101/split2, kinetics710, video_folder/mydata
        tfds_data_dir='',  # the --data_dir of the build
        tfds_split='train',  # the split trained on (or whose features are extracted)
        **splits,
    )


def augment_fields() -> dict:
    """Where training augmentation runs (README "Augmentation on the device")."""
    return dict(
        # host: the official pixels (PIL/cv2 on the host); device: the host only decodes
        # and draws the parameters (the same draws), vmae2/ops/augment.py applies them in
        # the train step (within 1-2 levels of the host's pixels, docs/benchmarks.md 13).
        augment_on='host',
        # (height, width) the decoded frames travel on with augment_on=device; larger
        # frames are scaled down to fit (320x576 holds 16:9 frames stored at short side 320)
        canvas=(320, 576),
    )


def model_config(variant: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(
            variant=variant,  # vit_s / vit_b / vit_l / vit_h / vit_g (spec 1.1)
            num_frames=16,  # official --num_frames 16
            input_size=224,  # official --input_size 224
            tubelet_size=2,  # official --tubelet_size 2
            decoder_depth=4,  # every official pretrain script passes 4 (spec 1.7)
            overrides={},  # width/depth/... overrides for small models
            drop_path_rate=0.0,  # official pretrain --drop_path 0
            # einsum | recompute | xla | cudnn. recompute: einsum softmax whose backward
            # recomputes the probabilities (FlashAttention's memory); fastest measured
            # on CPU (docs/benchmarks.md 9); GPU not measured yet.
            attention_impl='recompute',
            remat_policy='none',  # none | full | dots_saveable | dots_with_no_batch_dims_saveable
            # Blocks as one lax.scan (parameter tree unchanged): 1.5x faster fine-tuning
            # steps on CPU, compiles one block (docs/benchmarks.md 9).
            scan_layers=True,
        )
    )


def pretrain_config(variant: str) -> ml_collections.ConfigDict:
    """Defaults of the official run_mae_pretraining.py + the hybrid scripts (spec 4)."""
    c = ml_collections.ConfigDict()
    c.trainer = 'pretrain'
    c.seed = 0
    c.model = model_config(variant)
    c.masking = ml_collections.ConfigDict(
        dict(
            mask_type='tube',  # scripts: --mask_type tube (spec 4.2)
            mask_ratio=0.9,  # scripts: --mask_ratio 0.9
            decoder_mask_type='run_cell',  # scripts: --decoder_mask_type run_cell
            decoder_mask_ratio=0.5,  # scripts: --decoder_mask_ratio 0.5 (0 = V1 decoder)
        )
    )
    c.normalize_target = True  # official --normlize_target default True (spec 3)
    c.data = ml_collections.ConfigDict(
        dict(
            train_list='',  # official list: `path start_idx total_frames` per line
            data_root='',  # joined in front of every list path
            video_dir='',  # alternative to train_list: a folder of videos
            sampling_rate=4,  # scripts: --sampling_rate 4 (spec 4.3)
            num_sample=4,  # scripts: --num_sample 4 repeated augmentation
            worker_count=0,  # grain worker processes (0 = decode in the main process)
            **tfds_fields(),
            **augment_fields(),
        )
    )
    # Videos per step over all processes (official batch_size x GPUs); the tensor
    # batch is batch_size * num_sample clips.
    c.batch_size = 64  # official default --batch_size 64 (per GPU)
    c.optim = ml_collections.ConfigDict(
        dict(
            base_lr=1.5e-4,  # official default --lr; peak = base_lr * batch_size / 256
            min_lr=1e-5,  # official --min_lr, scaled like lr
            epochs=300,  # official default --epochs
            warmup_epochs=40,  # official default --warmup_epochs
            total_steps=0,  # >0 overrides epochs * steps_per_epoch
            warmup_steps=-1,  # >=0 overrides warmup_epochs * steps_per_epoch
            weight_decay=0.05,  # official --weight_decay 0.05, constant
            b1=0.9,
            b2=0.95,  # scripts: --opt_betas 0.9 0.95
            eps=1e-8,  # official --opt_eps 1e-8
            clip_grad=0.0,  # 0 = no clipping (official --clip_grad None)
        )
    )
    c.grad_accum_steps = 1  # micro-batches per optimiser step (the official --update_freq)
    c.dtype = 'float32'  # compute dtype: float32 or bfloat16 (params stay fp32)
    c.mesh = ml_collections.ConfigDict(dict(data=-1))
    c.sharding_rules = ml_collections.ConfigDict(SHARDING_RULES)  # logical axis -> mesh axis
    c.distributed = distributed_config()
    c.log_every = 20
    c.checkpoint_every = 1000  # steps; also saved at the end
    c.keep_checkpoints = 3
    c.vis_every = 0  # steps between reconstruction PNGs (0: only at the end)
    c.init_from = ''  # continue from pre-trained weights: a vmae2 workdir or an official file
    c.probe = probe_config()
    return c


def hybrid_script(
    c: ml_collections.ConfigDict,
    *,
    gpus: int,
    lr: float,
    epochs: int,
    warmup_epochs: int,
    clip_grad: float = 0.0,
    remat: bool = False,
) -> ml_collections.ConfigDict:
    """Applies scripts/pretrain/vit_*_hybrid_pt.sh (spec 4.2): 32 videos per GPU,
    num_sample 4, adamw (0.9, 0.95), tube 0.9 + run_cell 0.5."""
    c.batch_size = 32 * gpus
    c.data.num_sample = 4
    c.optim.base_lr = lr
    c.optim.epochs = epochs
    c.optim.warmup_epochs = warmup_epochs
    c.optim.clip_grad = clip_grad
    if remat:  # the script's --with_checkpoint
        c.model.remat_policy = 'full'
    return c
