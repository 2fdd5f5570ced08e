"""vmae2.core.data and the run's log: the class count says where it came from, and
the start-up lines carry no noise."""

import logging

import optax
import pytest

from configs.finetune import common as ft_common
from vmae2.core import data
from vmae2.core.state import StateFactory
from vmae2.errors import DataError
from vmae2.models.classifier import Classifier
from vmae2.models.config import ModelConfig
from vmae2.runtime import metrics
from vmae2.runtime import sharding


def lists(folder, train, val):
    for name, labels in (('train.csv', train), ('val.csv', val)):
        (folder / name).write_text(''.join(f'v{i}.mp4 {y}\n' for i, y in enumerate(labels)))
    c = ft_common.finetune_config('vit_s')
    c.data.data_path = str(folder)
    return c


def test_inferred_class_count_names_its_source_and_missing_labels(tmp_path, caplog):
    c = lists(tmp_path, [0, 1, 2, 4, 5, 6, 7], [0, 7])  # no video of class 3
    with caplog.at_level(logging.INFO, logger='vmae2'):
        assert data.labelled_data(c).num_classes == 8
    assert '8 classes, from the largest label + 1 in' in caplog.text
    assert str(tmp_path / 'train.csv') in caplog.text and '7 distinct labels seen' in caplog.text
    assert 'some classes have no video; set --config.num_classes' in caplog.text


def test_empty_and_out_of_range_lists_name_the_file(tmp_path):
    c = lists(tmp_path, [], [0])
    with pytest.raises(DataError, match='train.csv lists no videos'):
        data.labelled_data(c)
    c = lists(tmp_path, [0, 5], [0])
    c.num_classes = 3
    with pytest.raises(DataError, match=r"label 5 of '.*v1.mp4' is out of range for 3 classes"):
        data.labelled_data(c)


def test_no_sharding_warning_when_the_mesh_does_not_shard(caplog):
    mesh = sharding.make_mesh({'data': -1})  # FSDP rules, but no fsdp axis
    model = ModelConfig.create('vit_s', width=32, depth=1, num_heads=2, mlp_dim=64)
    with caplog.at_level(logging.INFO, logger='vmae2'):
        StateFactory(lambda r: Classifier(model, 3, rngs=r), lambda p: optax.sgd(1.0), mesh,
                     {'embed': 'fsdp'}, 0).create()
    assert 'parameters sharded' not in caplog.text


def test_eta_leaves_out_the_first_step(monkeypatch):
    """The first step includes compilation: the ETA is timed from its end."""
    clock = {'t': 0.0}
    monkeypatch.setattr(metrics.time, 'time', lambda: clock['t'])
    progress = metrics.Progress(0, 101, bar=False)
    clock['t'] = 600.0  # a 10-minute compile inside step 1
    progress.update(1)
    clock['t'] = 610.0  # then 1 s per step
    progress.update(11)
    assert progress.eta_seconds(11) == pytest.approx(90.0)
