"""The TFDS video datasets: each builder on a small download in the layout the dataset
ships in, read back with tfds.data_source, bad input, resume, the command line, and
every stage kind trained or run from a built dataset.

Expected records come from the hand-written split files below (the official formats),
frame contents from the colour codes the test videos were written with."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import testing
from data_pipelines.datasets import builders, k710, layouts
from data_pipelines.datasets.stored import StoredSplit
from data_helpers import codes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H, N = 48, 32, 12  # test videos: 48x32, 12 frames (stored at their size: short side < 320)


def video(path, first_code=0, frames=N):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith('.webm'):  # PyAV probes the content, so an mp4 under .webm reads back
        testing.write_test_video(path + '.mp4', frames, W, H, first_code=first_code)
        os.replace(path + '.mp4', path)
    else:
        testing.write_test_video(path, frames, W, H, first_code=first_code)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def build(name, manual_dir, data_dir, config=None):
    b = builders.make(name, data_dir=str(data_dir), config=config)
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return b


def listed(split):
    return [(r.path, r.label) for r in split]


# ---------------------------------------------------------------- UCF101 (built once)


def ucf101_download(m):
    """UCF-101 with 2 classes; the test list writes HandStandPushups files in the
    HandstandPushups folder, as the real lists do; one train video is corrupt, one missing."""
    u = os.path.join(m, 'UCF-101')
    video(f'{u}/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi', 0)
    video(f'{u}/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi', 12)
    video(f'{u}/HandstandPushups/v_HandStandPushups_g01_c01.avi', 24)
    video(f'{u}/HandstandPushups/v_HandStandPushups_g08_c01.avi', 36)
    testing.write_corrupt_video(f'{u}/HandstandPushups/v_HandStandPushups_g09_c01.avi')
    t = os.path.join(m, 'ucfTrainTestlist')
    write(f'{t}/classInd.txt', '1 ApplyEyeMakeup\n2 HandstandPushups\n')
    for k in (1, 2, 3):
        train, test = ('g08', 'g01') if k == 1 else ('g01', 'g08')
        write(f'{t}/trainlist0{k}.txt', f'ApplyEyeMakeup/v_ApplyEyeMakeup_{train}_c01.avi 1\n'
              f'HandstandPushups/v_HandStandPushups_{train}_c01.avi 2\n'
              'HandstandPushups/v_HandStandPushups_g09_c01.avi 2\n'
              'HandstandPushups/v_HandStandPushups_g10_c01.avi 2\n')
        write(f'{t}/testlist0{k}.txt', f'ApplyEyeMakeup/v_ApplyEyeMakeup_{test}_c01.avi\n'
              f'HandstandPushups/v_HandStandPushups_{test}_c01.avi\n')


@pytest.fixture(scope='module')
def ucf(tmp_path_factory):
    base = tmp_path_factory.mktemp('ucf')
    m, d = base / 'manual', base / 'data'
    ucf101_download(str(m))
    return build('ucf101', m, d), str(d)


def test_ucf101_builds_reads_back_and_lists_the_skipped(ucf):
    builder, data_dir = ucf
    train = StoredSplit('ucf101', data_dir, 'train')
    assert [(r.path, r.label, r.total_frames) for r in train.records] == [
        ('UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi', 0, N),
        ('UCF-101/HandstandPushups/v_HandStandPushups_g08_c01.avi', 1, N),
    ]
    assert train.label_names == ['ApplyEyeMakeup', 'HandstandPushups']
    reasons = dict(train.skipped)
    assert set(reasons) == {
        'UCF-101/HandstandPushups/v_HandStandPushups_g09_c01.avi',
        'UCF-101/HandstandPushups/v_HandStandPushups_g10_c01.avi',
    }
    assert reasons['UCF-101/HandstandPushups/v_HandStandPushups_g10_c01.avi'] == 'file does not exist'
    # Frames: codes 12.. and 36.. as written; any index order of the sampler.
    clip = train.reader.decode_frames(train.records[1], [0, 5, 5, 11])
    assert clip.shape == (4, H, W, 3) and codes(clip) == [36, 41, 41, 47]
    val = StoredSplit('ucf101', data_dir, 'val')
    assert listed(val.records) == [
        ('UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi', 0),
        ('UCF-101/HandstandPushups/v_HandStandPushups_g01_c01.avi', 1),
    ]
    assert codes(val.reader.decode_frames(val.records[1], np.arange(N))) == list(range(24, 36))
    # The data source is TFDS's: one example per frame, in (video, frame) order.
    source = tfds.data_source('ucf101', split='val', data_dir=data_dir, download=False)
    assert len(source) == 2 * N
    assert [int(source[i]['frame']) for i in (0, 11, 12)] == [0, 11, 0]
    assert [int(source[i]['video']) for i in (0, 12)] == [0, 1]
    lines = builders.summary_lines(builder)
    assert lines[1] == f'  train: 2 videos, {2 * N} frames, 2 skipped'
    assert '    1 x file does not exist' in lines


def test_ucf101_other_splits_and_missing_files(tmp_path):
    ucf101_download(str(tmp_path))
    s2 = layouts.ucf101(str(tmp_path), 2)
    assert [os.path.basename(r.path) for r in s2.splits['val']] == [
        'v_ApplyEyeMakeup_g08_c01.avi', 'v_HandStandPushups_g08_c01.avi'
    ]
    os.remove(tmp_path / 'ucfTrainTestlist' / 'testlist03.txt')
    with pytest.raises(FileNotFoundError, match='testlist03.txt'):
        layouts.ucf101(str(tmp_path), 3)
    with pytest.raises(layouts.LayoutError, match='choose one of'):
        layouts.ucf101(str(tmp_path), 4)


# ---------------------------------------------------------------- the other layouts


def test_hmdb51(tmp_path):
    m = str(tmp_path / 'manual')
    video(f'{m}/brush_hair/a.avi', 0)
    video(f'{m}/brush_hair/b.avi', 12)
    video(f'{m}/brush_hair/c.avi', 24)
    video(f'{m}/cartwheel/d.avi', 36)
    video(f'{m}/cartwheel/e.avi', 48)
    s = f'{m}/testTrainMulti_7030_splits'
    for k in (1, 2, 3):  # 1 = train, 2 = test, 0 = unused
        write(f'{s}/brush_hair_test_split{k}.txt', 'a.avi 1 \nb.avi 2 \nc.avi 0 \n')
        write(f'{s}/cartwheel_test_split{k}.txt', 'd.avi 1 \ne.avi 2 \n')
    build('hmdb51', m, tmp_path / 'data', 'split2')
    train = StoredSplit('hmdb51/split2', str(tmp_path / 'data'), 'train')
    assert listed(train.records) == [('brush_hair/a.avi', 0), ('cartwheel/d.avi', 1)]
    val = StoredSplit('hmdb51/split2', str(tmp_path / 'data'), 'val')
    assert listed(val.records) == [('brush_hair/b.avi', 0), ('cartwheel/e.avi', 1)]
    assert codes(val.reader.decode_frames(val.records[1], [2])) == [50]


def test_ssv2(tmp_path):
    m = str(tmp_path / 'manual')
    video(f'{m}/20bn-something-something-v2/78687.webm', 0)
    video(f'{m}/20bn-something-something-v2/42326.webm', 20)
    video(f'{m}/20bn-something-something-v2/100.webm', 40)
    write(f'{m}/labels/labels.json', json.dumps(
        {'Approaching something with your camera': '1', 'Holding something next to something': '0'}))
    entry = lambda i, t: {'id': i, 'label': t.lower(), 'template': t, 'placeholders': []}  # noqa: E731
    write(f'{m}/labels/train.json', json.dumps([
        entry('78687', 'Holding [something] next to [something]'),
        entry('42326', 'Approaching [something] with your camera')]))
    write(f'{m}/labels/validation.json', json.dumps([entry('100', 'Approaching [something] with your camera')]))
    build('ssv2', m, tmp_path / 'data')
    train = StoredSplit('ssv2', str(tmp_path / 'data'), 'train')
    assert train.label_names == ['Holding something next to something', 'Approaching something with your camera']
    assert listed(train.records) == [
        ('20bn-something-something-v2/78687.webm', 0), ('20bn-something-something-v2/42326.webm', 1)
    ]
    assert codes(train.reader.decode_frames(train.records[1], [0, 11])) == [20, 31]


def kinetics_download(m, classes, ids, with_annotations=True, missing=()):
    """``ids[split] = [(youtube_id, class)]``; videos <id>_000010_000020.mp4."""
    rows = {}
    code = 0
    for split, items in ids.items():
        rows[split] = []
        for yt, cls in items:
            stem = f'{yt}_000010_000020'
            if stem not in missing:
                folder = f'{m}/{split}' if with_annotations else f'{m}/{split}/{cls}'
                video(f'{folder}/{stem}.mp4', code % 60, frames=4)
            code += 4
            rows[split].append(f'{cls},{yt},10,20,{split}')
    if with_annotations:
        name = {'train': 'train', 'val': 'validate'}
        for split, r in rows.items():
            write(f'{m}/annotations/{name[split]}.csv', 'label,youtube_id,time_start,time_end,split\n'
                  + '\n'.join(r) + '\n')


def test_kinetics400_annotations_with_a_missing_video(tmp_path):
    m = str(tmp_path / 'manual')
    kinetics_download(m, None, {
        'train': [('aaaaaaaaaaa', 'zumba'), ('bbbbbbbbbbb', 'abseiling'), ('ccccccccccc', 'zumba')],
        'val': [('ddddddddddd', 'abseiling')],
    }, missing=('ccccccccccc_000010_000020',))
    build('kinetics400', m, tmp_path / 'data')
    train = StoredSplit('kinetics400', str(tmp_path / 'data'), 'train')
    assert train.label_names == ['abseiling', 'zumba']
    assert listed(train.records) == [
        ('train/aaaaaaaaaaa_000010_000020.mp4', 1), ('train/bbbbbbbbbbb_000010_000020.mp4', 0)
    ]
    assert train.skipped == [('train/ccccccccccc_000010_000020.mp4', 'file does not exist')]
    assert codes(train.reader.decode_frames(train.records[1], [0, 3])) == [4, 7]


def test_kinetics_class_folders_and_the_k710_merge(tmp_path):
    m = str(tmp_path / 'k710')
    kinetics_download(f'{m}/kinetics400', None, {
        'train': [('aaaaaaaaaaa', 'dying_hair'), ('bbbbbbbbbbb', 'zumba')],
        'val': [('ccccccccccc', 'zumba'), ('aaaaaaaaaaa', 'dying_hair')],
    }, with_annotations=False)
    kinetics_download(f'{m}/kinetics600', None, {
        'train': [('bbbbbbbbbbb', 'zumba'), ('eeeeeeeeeee', 'dyeing_hair'), ('ggggggggggg', 'acting')],
        'val': [('fffffffffff', 'acting')],
    }, with_annotations=False)
    k400 = layouts.kinetics(f'{m}/kinetics400')
    assert k400.label_names == ['dying_hair', 'zumba']  # class folders, sorted
    write(f'{m}/k710_identical_label_merge.json', json.dumps({'dying_hair': 'dyeing_hair'}))
    write(f'{m}/label_map_k710.txt', 'zumba\ndyeing_hair\nacting\n')
    listing = k710.kinetics710(m)
    assert listing.label_names == ['zumba', 'dyeing_hair', 'acting']
    stems = lambda recs: [(os.path.basename(r.path)[:3], r.label) for r in recs]  # noqa: E731
    # Class folders in sorted order; bbb once (from K400); the val copy of aaa removed.
    assert stems(listing.splits['train']) == [('aaa', 1), ('bbb', 0), ('ggg', 2), ('eee', 1)]
    assert stems(listing.splits['val']) == [('ccc', 0), ('fff', 2)]
    assert listing.summary['train_duplicates'] == 1 and listing.summary['val_in_train_removed'] == 1
    assert listing.summary['maps'] == {'label_710to400': [1, 0], 'label_710to600': [2, 1, 0]}
    # The command line: parallel workers, the summary, and the data read back.
    data = str(tmp_path / 'data')
    out = run_cli('kinetics710', '--manual_dir', m, '--data_dir', data, '--workers', '2')
    assert out.returncode == 0, out.stderr[-2000:]
    assert '  train: 4 videos, 16 frames, 0 skipped' in out.stdout
    val = StoredSplit('kinetics710', data, 'val')
    assert listed(val.records)[1] == ('kinetics600/val/acting/fffffffffff_000010_000020.mp4', 2)
    assert not os.path.exists(os.path.join(data, 'kinetics710', 'default', '1.0.0.build_cache'))


def test_video_folder_class_folders_with_label_names(tmp_path):
    m = str(tmp_path)
    video(f'{m}/train/run/a.mp4', 0)
    video(f'{m}/train/jump/b.mp4', 12)
    video(f'{m}/val/run/c.mp4', 24)
    write(f'{m}/labels.txt', 'run\njump\n')
    listing = layouts.video_folder(m)
    assert listing.label_names == ['run', 'jump']
    assert {s: [(os.path.relpath(r.path, m), r.label) for r in recs] for s, recs in listing.splits.items()} == {
        'train': [('train/jump/b.mp4', 1), ('train/run/a.mp4', 0)], 'val': [('val/run/c.mp4', 0)]
    }
    shutil.rmtree(f'{m}/train/run')
    os.remove(f'{m}/labels.txt')
    write(f'{m}/train.csv', 'x.mp4 -1\n')
    with pytest.raises(ValueError, match='label must be >= 0'):
        layouts.video_folder(m)


# ---------------------------------------------------------------- the command line, bad input, resume


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, '-m', 'vmae2.tools.build_dataset', *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )


def test_a_missing_split_file_or_an_empty_split_stops_the_build(tmp_path):
    m = str(tmp_path / 'manual')
    ucf101_download(m)
    os.remove(f'{m}/ucfTrainTestlist/trainlist01.txt')
    out = run_cli('ucf101', '--manual_dir', m, '--data_dir', str(tmp_path / 'd'), '--workers', '1')
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f'error: UCF101 train list not found (expected {m}/ucfTrainTestlist/trainlist01.txt)'
    )
    write(f'{m}/ucfTrainTestlist/trainlist01.txt', '')
    with pytest.raises(layouts.LayoutError, match="split 'train' lists no videos"):
        layouts.ucf101(m, 1)


def test_a_split_whose_videos_all_fail_stops_and_a_rerun_resumes_from_the_cache(tmp_path):
    m, data = str(tmp_path / 'manual'), str(tmp_path / 'data')
    ucf101_download(m)
    val_a = f'{m}/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi'
    val_b = f'{m}/UCF-101/HandstandPushups/v_HandStandPushups_g01_c01.avi'
    shutil.move(val_a, val_a + '.away')
    shutil.move(val_b, val_b + '.away')
    with pytest.raises(layouts.LayoutError, match="split 'val': none of its 2 videos could be read"):
        build('ucf101', m, data)
    # The train videos were encoded before val failed: a rerun takes them from the
    # cache, so it succeeds even though their sources are gone now.
    for name in ('ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi', 'HandstandPushups/v_HandStandPushups_g08_c01.avi'):
        os.remove(f'{m}/UCF-101/{name}')
    shutil.move(val_a + '.away', val_a)
    shutil.move(val_b + '.away', val_b)
    build('ucf101', m, data)
    train = StoredSplit('ucf101', data, 'train')
    assert [r.total_frames for r in train.records] == [N, N]
    assert codes(train.reader.decode_frames(train.records[0], [3])) == [15]


def test_the_beam_build_writes_what_the_local_build_writes(ucf, tmp_path):
    """The Beam path (Kinetics-710 scale) on Beam's DirectRunner in two processes: the
    same records, skipped list and frame pixels as the local build of the fixture."""
    pytest.importorskip('apache_beam', reason="apache-beam is not installed (pip install -e '.[beam]')")
    _, local = ucf
    m, beam = str(tmp_path / 'manual'), str(tmp_path / 'beam')
    ucf101_download(m)
    out = run_cli('ucf101', '--manual_dir', m, '--data_dir', beam, '--beam_pipeline_options',
                  'runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing')
    assert out.returncode == 0, out.stderr[-2000:]
    assert '  train: 2 videos, 24 frames, 2 skipped' in out.stdout
    assert not os.path.exists(f'{beam}/ucf101/split1/1.0.0{builders.BEAM_INDEX_SUFFIX}')
    # The skip reasons quote the source path, under each build's own manual_dir.
    local_manual = os.path.join(os.path.dirname(local), 'manual')  # the fixture's
    frames = np.arange(N)
    for name in ('train', 'val'):
        a, b = StoredSplit('ucf101', local, name), StoredSplit('ucf101', beam, name)
        assert [(r.path, r.label, r.total_frames) for r in b.records] == [
            (r.path, r.label, r.total_frames) for r in a.records]
        assert sorted((p, why.replace(m, 'M')) for p, why in b.skipped) == sorted(
            (p, why.replace(local_manual, 'M')) for p, why in a.skipped)
        for ra, rb in zip(a.records, b.records):
            assert np.array_equal(b.reader.decode_frames(rb, frames), a.reader.decode_frames(ra, frames))


# ---------------------------------------------------------------- every stage kind from a built dataset


def test_stages_train_and_run_from_the_tfds_dataset(ucf, tmp_path):
    from configs import evaluate as evaluate_config
    from configs import extract_features as features_config
    from configs import smoke
    from configs.finetune import common as ft_common
    from finetune_chain_test import shrink
    from vmae2.trainers import registry

    _, data_dir = ucf
    tfds_data = dict(tfds_name='ucf101', tfds_data_dir=data_dir)
    pre = smoke.get_config()
    pre.data.update(video_dir='', **tfds_data)
    pre.data.num_sample, pre.batch_size = 1, 8
    pre.optim.update(total_steps=2, warmup_steps=1)
    pre.checkpoint_every = 2
    last = registry.run(pre, str(tmp_path / 'pre'))
    assert last['skipped_videos'] == 0 and np.isfinite(last['loss'])

    ft = shrink(ft_common.finetune_config('vit_s'))
    ft.data.update(sampling_rate=2, test_num_segment=2, test_num_crop=1, read_threads=1, **tfds_data)
    ft.batch_size, ft.eval_batch_size = 4, 8
    ft.optim.update(total_steps=2, warmup_steps=1, base_lr=0.05)
    ft.log_every = ft.checkpoint_every = ft.eval_every = 2
    ft_dir = str(tmp_path / 'ft')
    out = registry.run(ft, ft_dir)
    assert out['test_videos'] == 2 and out['test_unreadable_videos'] == 0
    with open(os.path.join(ft_dir, 'predictions.csv')) as f:
        rows = f.read().splitlines()
    assert [r.split(',')[:2] for r in rows[1:]] == [
        ['UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi', 'ApplyEyeMakeup'],
        ['UCF-101/HandstandPushups/v_HandStandPushups_g01_c01.avi', 'HandstandPushups'],
    ]

    ev = shrink(evaluate_config.get_config('ucf101,vit_s'))
    ev.num_classes, ev.init_from = 0, ft_dir
    ev.data.update(sampling_rate=2, test_num_segment=2, test_num_crop=1, **tfds_data)
    ev.eval_batch_size = 8
    m = registry.run(ev, str(tmp_path / 'ev'))
    assert m['test_top1'] == pytest.approx(out['test_top1'])

    fc = shrink(features_config.get_config('thumos14'))
    fc.model.variant, fc.init_from = 'vit_s', ft_dir
    fc.data.update(tfds_split='val', **tfds_data)
    fc.output_dir, fc.batch_size = str(tmp_path / 'features'), 8
    counts = registry.run(fc, str(tmp_path / 'fx'))
    assert counts == {'written': 2, 'skipped_existing': 0, 'unreadable': 0}
    # Windows of 4 frames every 4 of 12 stored frames: (12 - 4) / 4 + 1 = 3.
    assert np.load(tmp_path / 'features' / 'v_ApplyEyeMakeup_g01_c01.npy').shape == (3, 32)

    pre.data.tfds_split = 'test'
    with pytest.raises(ValueError, match=r"no split 'test': choose one of \['train', 'val'\]"):
        registry.run(pre, str(tmp_path / 'pre2'))
