"""Test set-up: 8 fake CPU devices (before jax starts) and shared fixtures."""

import os

os.environ['XLA_FLAGS'] = (
    os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8'
).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')


import pytest  # noqa: E402


@pytest.fixture(scope='module')
def video_dir(tmp_path_factory):
    """4 small mp4 files (40 frames, 48x40) whose frames carry distinct colour codes."""
    from data_pipelines import testing as data_testing

    d = tmp_path_factory.mktemp('videos')
    for i in range(4):
        data_testing.write_test_video(
            str(d / f'v{i}.mp4'), num_frames=40, width=48, height=40, first_code=i * 3
        )
    return str(d)
