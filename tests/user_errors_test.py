"""A user mistake ends with one message that names the problem and the fix, and exit
status 2 (no traceback unless --debug / VMAE2_DEBUG=1)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines import testing as data_testing
from vmae2.errors import CheckpointError
from vmae2.errors import DataError
from vmae2.errors import UserError
from vmae2.models.config import ModelConfig
from vmae2.tools import cli
from vmae2.tools import convert
from vmae2.tools import predict
from vmae2.weights import files
from vmae2.weights import keymaps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main_py(*args):
    """(exit status, stderr) of `python main.py ARGS` with 8 fake CPU devices."""
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    out = subprocess.run(
        [sys.executable, 'main.py', *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )
    lines = [line for line in out.stderr.splitlines() if not line.startswith(('I1', 'W1'))]
    return out.returncode, lines


def assert_one_message(status, lines, *parts):
    assert status == 2, lines
    assert len(lines) == 1 and lines[0].startswith('error: '), lines
    for p in parts:
        assert p in lines[0], lines[0]


def smoke(tmp_path, *overrides):
    return ('--config', 'configs/smoke.py', '--workdir', str(tmp_path / 'w'), *overrides)


def test_a_misspelt_override_names_the_field_and_the_nearest_one(tmp_path):
    status, lines = main_py(*smoke(tmp_path, '--config.optim.base_lr2=1'))
    assert_one_message(status, lines, 'optim.base_lr2', 'did you mean optim.base_lr?')


def test_a_missing_config_file_and_an_unknown_flag(tmp_path):
    status, lines = main_py('--config', 'configs/nope.py', '--workdir', str(tmp_path))
    assert_one_message(status, lines, 'configs/nope.py', 'No such file')
    status, lines = main_py('--config', 'configs/smoke.py', '--workdri', str(tmp_path))
    assert_one_message(status, lines, 'workdri', 'workdir')


def test_a_batch_that_does_not_split_over_the_devices(tmp_path, video_dir):
    # 8 fake devices (tests/conftest.py): 3 videos x num_sample 2 = 6 clips.
    status, lines = main_py(*smoke(tmp_path, f'--config.data.video_dir={video_dir}', '--config.batch_size=3'))
    assert_one_message(status, lines, 'batch_size x num_sample = 6', 'multiple of 8')


def test_an_empty_video_folder_and_a_list_folder_without_lists(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    status, lines = main_py(*smoke(tmp_path, f'--config.data.video_dir={empty}'))
    assert_one_message(status, lines, f'no videos in {empty}')
    args = ('--config', 'configs/finetune/ucf101.py:vit_s', '--workdir', str(tmp_path / 'f'))
    status, lines = main_py(*args, f'--config.data.data_path={empty}')
    assert_one_message(status, lines, f'{empty}/train.csv does not exist', 'val.csv')


def test_a_data_setting_the_transform_rejects(tmp_path):
    from data_pipelines import synthetic

    root = synthetic.make_dataset(str(tmp_path / 'made'), {'train': 1, 'val': 1})
    status, lines = main_py(
        '--config', 'configs/finetune/ucf101.py:vit_s', '--workdir', str(tmp_path / 'f'),
        f'--config.data.data_path={root}', f'--config.data.data_root={root}',
        '--config.data.crop_scale=(0.5, 0.2)', '--config.batch_size=8',
    )
    assert_one_message(status, lines, 'data settings', 'crop_scale', '(0.5, 0.2)')


def test_a_workdir_that_cannot_be_written(tmp_path, video_dir):
    if os.access('/sys', os.W_OK) and not os.path.ismount('/sys'):
        pytest.skip('no read-only directory on this machine (/sys is writable)')
    status, lines = main_py(
        '--config', 'configs/smoke.py', '--workdir', '/sys/vmae2_workdir',
        f'--config.data.video_dir={video_dir}',
    )
    assert_one_message(status, lines, '/sys/vmae2_workdir', 'permission denied')


def test_run_cli_turns_user_errors_into_status_2_and_keeps_bugs(capsys, monkeypatch):
    def mistake():
        raise DataError('the list is empty')

    with pytest.raises(SystemExit) as e:
        cli.run_cli(mistake)
    assert e.value.code == 2 and capsys.readouterr().err == 'error: the list is empty\n'

    def bug():
        raise ValueError('a bug')

    with pytest.raises(ValueError, match='a bug'):
        cli.run_cli(bug)  # a bug keeps its traceback
    monkeypatch.setenv(cli.DEBUG_ENV, '1')
    with pytest.raises(DataError):
        cli.run_cli(mistake)  # the debug switch shows the traceback of a mistake too


# ----------------------------------------------------------------- tools


def _official_file(path, model: ModelConfig, kind='classifier', classes=5, seed=0):
    abstract = convert.abstract_params(model, kind, classes)
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in keymaps.flatten(abstract).items()}
    files.write_official(str(path), keymaps.params_to_official(keymaps.unflatten(params), kind), kind)
    return str(path)


def test_convert_reads_the_model_size_from_the_shapes(tmp_path):
    src = _official_file(tmp_path / 'vit_s.npz', ModelConfig.create('vit_s'))
    meta = convert.convert_to_vmae2(src, str(tmp_path / 'out'))  # no --model
    assert meta['variant'] == 'vit_s' and 'model size vit_s, read from the weight shapes' in meta['notes']
    tiny = ModelConfig.create('vit_s', width=32, depth=1, num_heads=2, mlp_dim=64)
    src = _official_file(tmp_path / 'tiny.npz', tiny)
    with pytest.raises(CheckpointError, match=r'non-standard size \(width 32, depth 1, mlp_dim 64'):
        convert.convert_to_vmae2(src, str(tmp_path / 'out2'))


def test_a_weight_file_that_holds_code_is_refused_with_vmae2s_message(tmp_path):
    torch = pytest.importorskip('torch', reason='needs the [torch] extra')
    marker = tmp_path / 'ran'

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), 'w'))

    path = tmp_path / 'evil.pth'
    torch.save({'model': {'w': torch.zeros(2)}, 'extra': Payload()}, str(path))
    with pytest.raises(CheckpointError) as e:
        files.read_state_dict(str(path))
    assert 'vmae2 reads weights only and refused it' in str(e.value)
    assert 'weights_only=False' not in str(e.value)
    assert not marker.exists()  # nothing ran


def test_predict_refuses_a_labels_file_shorter_than_the_head(tmp_path):
    model = ModelConfig.create(
        'vit_s', width=32, depth=1, num_heads=2, mlp_dim=64, num_frames=4, input_size=32,
        patch_size=8,
    )
    src = _official_file(tmp_path / 'c.npz', model, classes=3)
    ckpt = str(tmp_path / 'ckpt')
    convert.convert_to_vmae2(
        src, ckpt, variant='vit_s', num_frames=4, input_size=32,
        overrides=dict(width=32, depth=1, num_heads=2, mlp_dim=64, patch_size=8),
    )
    video = data_testing.write_test_video(str(tmp_path / 'v.mp4'), num_frames=16, width=48, height=40)
    labels = tmp_path / 'labels.txt'
    labels.write_text('a\nb\n')
    argv = [video, '--checkpoint', ckpt, '--labels', str(labels), '--num-segments', '1', '--num-crops', '1']
    with pytest.raises(DataError, match='names 2 classes but the checkpoint head has 3'):
        predict.main(argv)
    assert issubclass(DataError, UserError)
