"""Masks against hand-computed tables and the official generators' algorithms."""

import chex
import jax
import numpy as np
import pytest

from vmae2.ops import masking


def official_running_cell(grid, ratio):
    """Re-statement of the official RunningCellMaskingGenerator (queue + pointer),
    1 = not decoded; returns [4, T, H, W] for pointer starts 0..3 (spec 2.2)."""
    frames, height, width = grid
    m = int(4 * ratio)
    queue = np.hstack([np.ones(m), np.zeros(4 - m)])
    maps = []
    for start in range(4):
        ptr = start
        per_t = []
        for _ in range(frames):
            ptr += 1  # run_cell before get_cell
            cell = queue[(np.arange(4) + ptr) % 4].reshape(2, 2)
            per_t.append(np.tile(cell, [height // 2, width // 2]))
        maps.append(np.stack(per_t))
    return np.stack(maps)


def test_running_cell_hand_table_ratio_half():
    # Spec 2.2, ratio 0.5, k=0 (1 = not decoded): t0..t3 then repeats.
    expected = np.array(
        [[[1, 0], [0, 1]], [[0, 0], [1, 1]], [[0, 1], [1, 0]], [[1, 1], [0, 0]], [[1, 0], [0, 1]]]
    )
    table = masking.running_cell_table((5, 2, 2), 0.5)
    dropped = np.ones(20, bool)
    dropped[table[0]] = False
    np.testing.assert_array_equal(dropped.reshape(5, 2, 2), expected.astype(bool))


@pytest.mark.parametrize(
    'ratio,kept_t0_k0', [(0.25, [1, 1, 1, 0]), (0.5, [0, 1, 1, 0]), (0.75, [0, 0, 1, 0])]
)
def test_running_cell_first_cell_by_hand(ratio, kept_t0_k0):
    # k=0, t=0: raster r gets ((r + 1) mod 4) < int(4 ratio) dropped.
    table = masking.running_cell_table((1, 2, 2), ratio)
    kept = np.zeros(4, int)
    kept[table[0]] = 1
    np.testing.assert_array_equal(kept, kept_t0_k0)


@pytest.mark.parametrize('grid', [(8, 14, 14), (8, 16, 16), (3, 4, 6)])
@pytest.mark.parametrize('ratio', [0.25, 0.5, 0.75])
def test_running_cell_matches_official_generator(grid, ratio):
    ref = official_running_cell(grid, ratio)
    table = masking.running_cell_table(grid, ratio)
    for k in range(4):
        np.testing.assert_array_equal(table[k], np.flatnonzero(ref[k].reshape(-1) == 0))


@pytest.mark.parametrize('grid,visible,per_slice', [((8, 14, 14), 160, 20), ((8, 16, 16), 208, 26)])
def test_tube_counts_and_time_invariance(grid, visible, per_slice):
    spec = masking.MaskSpec(grid)
    assert spec.num_visible == visible
    idx = np.asarray(masking.encoder_visible(jax.random.key(0), spec, 3))
    chex.assert_shape(idx, (3, visible))
    t, h, w = grid
    for b in range(3):
        assert np.all(np.diff(idx[b]) > 0)  # ascending, unique
        spatial = (idx[b] % (h * w)).reshape(t, per_slice)
        assert np.all(spatial == spatial[0])  # a tube: same positions in every slice
        np.testing.assert_array_equal(idx[b] // (h * w), np.repeat(np.arange(t), per_slice))
    assert not np.array_equal(idx[0], idx[1])


def test_decoder_counts_and_loss_weight():
    spec = masking.MaskSpec((8, 14, 14))
    assert spec.num_decode == 784  # 1568 / 2 (spec 2.3)
    vis, dec, weight = (np.asarray(a) for a in masking.sample_masks(jax.random.key(1), spec, 4))
    chex.assert_shape(dec, (4, 784))
    for b in range(4):
        expected = (~np.isin(dec[b], vis[b])).astype(np.float32)
        np.testing.assert_array_equal(weight[b], expected)
        # Each row is one of the four running-cell phases.
        table = masking.running_cell_table((8, 14, 14), 0.5)
        assert any(np.array_equal(dec[b], row) for row in table)


def test_decoder_sequence_length_giant():
    spec = masking.MaskSpec((8, 16, 16))
    assert spec.num_visible + spec.num_decode == 1232  # spec 2.3


def test_v1_mode_decodes_exactly_the_encoder_masked_tokens():
    spec = masking.MaskSpec((8, 14, 14), decoder_mask_ratio=0.0)
    assert spec.num_decode == 1568 - 160
    vis, dec, weight = (np.asarray(a) for a in masking.sample_masks(jax.random.key(2), spec, 2))
    for b in range(2):
        np.testing.assert_array_equal(dec[b], np.setdiff1d(np.arange(1568), vis[b]))
    np.testing.assert_array_equal(weight, 1.0)


def test_random_masking_counts():
    spec = masking.MaskSpec((8, 14, 14), mask_type='random')
    vis = np.asarray(masking.encoder_visible(jax.random.key(3), spec, 2))
    assert vis.shape == (2, 1568 - int(0.9 * 1568))
    spatial = vis[0] % 196
    assert len(np.unique(vis[0] // 196)) > 1 and len(spatial) == len(vis[0])


def test_masks_are_jittable_and_deterministic():
    spec = masking.MaskSpec((8, 14, 14))
    f = jax.jit(lambda k: masking.sample_masks(k, spec, 2))
    a, b = f(jax.random.key(5)), f(jax.random.key(5))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    'kwargs,message',
    [
        (dict(decoder_mask_ratio=0.6), 'running-cell masking supports 0.25, 0.5, 0.75'),
        (dict(mask_type='block'), "mask_type 'block'"),
        (dict(decoder_mask_type='cell'), "decoder_mask_type 'cell'"),
        (dict(mask_ratio=1.0), 'mask_ratio 1.0'),
    ],
)
def test_bad_mask_configs_fail_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        masking.MaskSpec((8, 14, 14), **kwargs)


def test_odd_grid_rejected_for_running_cell():
    with pytest.raises(ValueError, match='even token grid'):
        masking.MaskSpec((8, 7, 7))
