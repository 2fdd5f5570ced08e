"""The dual-masking PretrainModel forward against a float64 NumPy re-statement.

The reference below is written from the spec, not from vmae2.models: patch embed
(Conv3d = patchify + matmul, spec 1.4), fixed 1-D sinusoid PE over the flattened
(t, h, w) index (1.5), visible-token gather, pre-norm blocks with BEiT q/v biases and
exact GELU (1.2, 1.3), encoder norm, encoder_to_decoder, the decoder sequence
[x_vis + pe_vis, mask_token + pe_dec], decoder blocks, the last n_dec rows, norm,
head (1.7, 2.3). Decoder positions come from running-cell 0.5 masking, so they
include encoder-visible tokens (the V2 case HF cannot test).
"""

from __future__ import annotations

import math

import jax
import numpy as np
from flax import nnx

from vmae2.models.config import ModelConfig
from vmae2.models.pretrain import PretrainModel
from vmae2.ops import masking

SPEC = ModelConfig.create(
    'vit_s', num_frames=4, input_size=64, tubelet_size=2, decoder_depth=2, width=48, depth=2,
    num_heads=3, mlp_dim=96, patch_size=16, decoder_width=32, decoder_num_heads=2,
    decoder_mlp_dim=64,
)


def np_sinusoid(n: int, d: int) -> np.ndarray:
    """Official get_sinusoid_encoding_table: sin on even channels, cos on odd (spec 1.5)."""
    pos = np.arange(n, dtype=np.float64)[:, None]
    j = np.arange(d)[None, :]
    angle = pos / np.power(10000.0, 2 * (j // 2) / d)
    out = angle.copy()
    out[:, 0::2] = np.sin(angle[:, 0::2])
    out[:, 1::2] = np.cos(angle[:, 1::2])
    return out


def np_layernorm(x, p, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p['scale'] + p['bias']


def np_gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def np_attention(x, p, heads):
    b, n, d = x.shape
    hd = d // heads
    bias = np.concatenate([p['q_bias'], np.zeros(d), p['v_bias']])
    qkv = (x @ p['qkv']['kernel'] + bias).reshape(b, n, 3, heads, hd).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * hd**-0.5, qkv[1], qkv[2]  # [b, h, n, hd]
    s = q @ k.transpose(0, 1, 3, 2)
    s = np.exp(s - s.max(-1, keepdims=True))
    a = s / s.sum(-1, keepdims=True)
    out = (a @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
    return out @ p['proj']['kernel'] + p['proj']['bias']


def np_block(x, p, heads):
    x = x + np_attention(np_layernorm(x, p['norm1']), p['attn'], heads)
    h = np_gelu(np_layernorm(x, p['norm2']) @ p['mlp']['fc1']['kernel'] + p['mlp']['fc1']['bias'])
    return x + h @ p['mlp']['fc2']['kernel'] + p['mlp']['fc2']['bias']


def np_pretrain_forward(params, x, visible_idx, decode_idx, spec):
    """x [B, T, H, W, 3] -> [B, n_dec, 3*kt*p*p], everything float64."""
    a = spec
    kt, p = spec.tubelet_size, a.patch_size
    b, t, h, w, c = x.shape
    # Conv3d with kernel = stride: each tubelet's (kt, p, p, c) pixels dot the kernel.
    patches = x.reshape(b, t // kt, kt, h // p, p, w // p, p, c).transpose(0, 1, 3, 5, 2, 4, 6, 7)
    patches = patches.reshape(b, -1, kt * p * p * c)
    pe = params['encoder']['patch_embed']
    tok = patches @ pe['kernel'].reshape(-1, a.width) + pe['bias']
    tok = tok + np_sinusoid(tok.shape[1], a.width)[None]
    xv = np.stack([tok[i, visible_idx[i]] for i in range(b)])
    for i in range(a.depth):
        xv = np_block(xv, params['encoder']['blocks'][i], a.num_heads)
    xv = np_layernorm(xv, params['encoder']['norm'])
    xv = xv @ params['encoder_to_decoder']['kernel']
    pos = np_sinusoid(spec.num_tokens, a.decoder_width)
    pos_vis = np.stack([pos[v] for v in visible_idx])
    pos_dec = np.stack([pos[d] for d in decode_idx])
    full = np.concatenate([xv + pos_vis, params['mask_token'] + pos_dec], axis=1)
    for j in range(spec.decoder_depth):
        full = np_block(full, params['decoder']['blocks'][j], a.decoder_num_heads)
    y = np_layernorm(full[:, -decode_idx.shape[1] :], params['decoder']['norm'])
    return y @ params['decoder']['head']['kernel'] + params['decoder']['head']['bias']


def _random_params(abstract, seed):
    """NumPy float32 values for every parameter of an abstract pure dict.

    LayerNorm scales around 1, biases, q/v biases and mask_token non-zero, weights
    ~ N(0, 1/fan_in). Made in NumPy so the test compiles only the forward.
    """
    rng = np.random.default_rng(seed)

    def make(path, leaf):
        name = str(path[-1].key)
        z = rng.standard_normal(leaf.shape).astype(np.float32)
        if name == 'scale':
            return 1.0 + 0.2 * z
        if leaf.ndim <= 1 or name == 'mask_token':
            return 0.2 * z
        fan_in = int(np.prod(leaf.shape[:-1]))
        return z / np.sqrt(fan_in)

    return jax.tree_util.tree_map_with_path(make, abstract)


def test_dual_masking_forward_matches_numpy_float64():
    abstract = nnx.eval_shape(lambda: PretrainModel(SPEC, rngs=nnx.Rngs(0)))
    graphdef, _ = nnx.split(abstract)
    params = _random_params(nnx.to_pure_dict(nnx.state(abstract, nnx.Param)), 1)

    @jax.jit
    def forward(params, x, visible, decode):
        return nnx.merge(graphdef, nnx.State(params))(x, visible, decode)

    # Encoder: tube masking at 50 % (same spatial positions in every time slice);
    # decoder: running-cell 0.5 phases (spec 2.2), so some decoded positions are
    # encoder-visible (the V2 case that HF cannot test).
    batch = 3
    t, h, w = SPEC.grid
    rng = np.random.default_rng(2)
    visible = []
    for _ in range(batch):
        spatial = np.sort(rng.permutation(h * w)[: h * w // 2])
        visible.append((np.arange(t)[:, None] * h * w + spatial[None]).reshape(-1))
    visible = np.stack(visible).astype(np.int32)
    decode = masking.running_cell_table(SPEC.grid, 0.5)[[0, 1, 3]]
    overlap = [np.intersect1d(v, d).size for v, d in zip(visible, decode)]
    assert all(0 < o < decode.shape[1] for o in overlap)

    x = rng.standard_normal((batch, SPEC.num_frames, 64, 64, 3)).astype(np.float32)
    got = np.asarray(forward(params, x, visible, decode))

    p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    want = np_pretrain_forward(p64, x.astype(np.float64), visible, decode, SPEC)
    assert got.shape == want.shape == (batch, decode.shape[1], SPEC.patch_dim)
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    print(f'dual-masking forward vs float64 NumPy: rel err {rel:.2e}')
    assert rel <= 1e-5
