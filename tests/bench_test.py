"""The benchmark scripts run end to end on a tiny size and print their tables."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, timeout=300):
    env = dict(os.environ)
    env['XLA_FLAGS'] = ''  # the bench workers pick their own devices/threads
    out = subprocess.run(
        [sys.executable] + args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_train_step_bench_tiny():
    out = _run(
        [
            'bench/train_step.py',
            '--model',
            'tiny',
            '--batch',
            '2',
            '--repeats',
            '1',
            '--warmup',
            '0',
            '--rows',
            'finetune',
        ]
    )
    # One row (two worker processes) keeps this near 30 s on an idle 2-core machine.
    assert '| workload | implementation |' in out
    for impl in ('vmae2 [recompute]', 'torch-hf'):
        assert impl in out, out


def test_data_bench_tiny():
    out = _run(
        [
            'bench/data.py',
            '--videos',
            'test',
            '--workers',
            '0,t1',
            '--clips',
            '2',
            '--repeats',
            '1',
            '--pipelines',
            'pretrain',
            '--formats',
            'raw,tfds,decode',
            '--augment-on',
            'host,device',
            '--profile',
        ]
    )
    assert '| pipeline | format |' in out
    assert '| clips per CPU-s |' in out, out
    assert '| pretrain | tfds | host | 0 |' in out, out
    assert '| pretrain | tfds | device | 0 | default | 1 |' in out, out
    assert '| pretrain | tfds | device | 0, 1 read threads | default | 1 |' in out, out
    assert '| vit_g | 45% (goal) | pretrain | device |' in out, out
    assert '| RandAugment rand-m7-n4-mstd0.5-inc1 (one view) |' in out, out
    assert '| device: frames onto the 320x576 canvas (one decode) |' in out, out
    assert '| grain shuffle: one index over 4 records |' in out, out


def test_device_augment_bench_tiny():
    out = _run(['bench/device_augment.py', '--videos', 'test', '--clips', '1', '--batches', '1'])
    assert '| op ShearX |' in out, out
    assert '| what | mean | max | fraction that differs | fraction off by more than 1 |' in out, out
    assert '| ClassifyTransform (2 views: RandAugment, RandomResizedCrop, flip) |' in out, out
    assert '| multi-scale crops (pre-training) | 16 |' in out, out


def test_device_check_tiny_runs_every_section_on_cpu(tmp_path):
    """The one-shot accelerator check, on a tiny model: every section reports; an
    attention implementation the backend lacks (cuDNN on CPU) is an error row."""
    import json

    out = _run(
        ['bench/device_check.py', '--tiny', '--out', str(tmp_path), '--attentions',
         'recompute,cudnn', '--sections', 'matmul,vit_b,depth,data,augment'],
        timeout=600,
    )
    assert 'device check: machine:' in open(tmp_path / 'device_check.md').read()
    report = json.load(open(tmp_path / 'device_check.json'))['sections']
    assert report['matmul'][0]['tflops'] > 0
    ok = [r for r in report['vit_b'] if r.get('fits')]
    assert {r['stage'] for r in ok} == {'pretrain', 'finetune'}
    assert all(r['clips_per_s'] > 0 and 0 < r['mfu'] and r['loss'] > 0 for r in ok)
    assert any('cuDNN' in r.get('error', '') for r in report['vit_b'])
    assert report['depth'][0]['model'] == 'vit_g' and report['depth'][0]['mfu_full'] > 0
    assert report['data'][0]['status'] == 0, report['data']
    assert [r['clips'] for r in report['augment']] == [4, 2], report['augment']
    assert all(r['ms_per_clip'] > 0 for r in report['augment']), report['augment']
    assert 'summary' in report, out


def test_training_flops_per_clip_match_the_reference_counts():
    sys.path.insert(0, os.path.join(ROOT, 'bench'))
    import data as bench_data

    # 6 x forward MACs: 25.87 G (ViT-B dual masking, perf_anchors.md / docs/benchmarks.md 6)
    # and 180 G (ViT-B 16x224 classifier, mmaction2's reported count).
    assert bench_data.training_flops_per_clip('vit_b', 'pretrain') / 6e9 == pytest.approx(25.87, rel=2e-3)
    assert bench_data.training_flops_per_clip('vit_b', 'finetune') / 6e9 == pytest.approx(180, rel=5e-3)


def test_profile_shares_overlapping_thunks_equally():
    """Hand-computed: A runs 0-10, B 5-15 (overlap 5-10 shared), C 20-30 alone; the
    shares add up to the busy wall time 25, not the summed durations 30."""
    sys.path.insert(0, ROOT)
    from bench import profile_step

    spans = [(0, 10, 'dense matmuls', 'a'), (5, 15, 'elementwise', 'b'),
             (20, 30, 'elementwise', 'c')]
    out = profile_step._share_overlaps(spans)
    assert out == {('dense matmuls', 'a'): 7.5, ('elementwise', 'b'): 7.5,
                   ('elementwise', 'c'): 10.0}


def test_profile_classifies_thunks_from_the_compiled_hlo():
    """Fusions take the category of what they compute (a dot inside a fusion is a
    matmul), named scopes win (attention, optimizer), loops are not counted twice."""
    sys.path.insert(0, ROOT)
    from bench import profile_step

    hlo = '''HloModule m

%fused_dot (p0: f32[4,8], p1: f32[8,2]) -> f32[4,2] {
  %p0 = f32[4,8]{1,0} parameter(0)
  %p1 = f32[8,2]{1,0} parameter(1)
  ROOT %d = f32[4,2]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_copy (p0.1: f32[4,8]) -> f32[8,4] {
  %p0.1 = f32[4,8]{1,0} parameter(0)
  ROOT %t = f32[8,4]{1,0} transpose(%p0.1), dimensions={1,0}
}

ENTRY %main (x: f32[4,8], w: f32[8,2]) -> f32[4,2] {
  %x = f32[4,8]{1,0} parameter(0)
  %w = f32[8,2]{1,0} parameter(1)
  %ynn_fusion = f32[4,2]{1,0} fusion(%x, %w), kind=kCustom, calls=%fused_dot, metadata={op_name="jit(f)/dot_general"}
  %attn = f32[4,2]{1,0} fusion(%x, %w), kind=kCustom, calls=%fused_dot, metadata={op_name="jit(f)/attention/dot_general"}
  %copy_fusion = f32[8,4]{1,0} fusion(%x), kind=kLoop, calls=%fused_copy
  %upd = f32[4,2]{1,0} exponential(%ynn_fusion), metadata={op_name="jit(f)/optimizer/exp"}
  ROOT %e = f32[4,2]{1,0} exponential(%attn)
}
'''
    index = profile_step._hlo_index(hlo)
    category = {n: profile_step._xla_category(*index[n])
                for n in ('ynn_fusion', 'attn', 'copy_fusion', 'upd', 'e')}
    assert category == {'ynn_fusion': 'dense matmuls', 'attn': 'attention core',
                        'copy_fusion': 'data movement', 'upd': 'optimizer', 'e': 'elementwise'}
    assert profile_step._xla_category('while', {'while'}, '') is None
