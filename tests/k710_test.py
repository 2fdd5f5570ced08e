"""The Kinetics-710 list tool: merged label map, de-duplication, index maps."""

import json

from data_pipelines.datasets import k710
from vmae2.tools import k710 as k710_tool


def test_k710_merges_dedups_and_writes_index_maps(tmp_path):
    def yt(i):
        return f'{i:011d}'

    k400 = k710.Source(
        'k400',
        ['dying hair', 'abseiling', 'zumba'],
        [(f'a/{yt(1)}_000001_000011.mp4', 0), (f'a/{yt(2)}_000000_000010.mp4', 1)],
        [(f'v/{yt(3)}_000005_000015.mp4', 2), (f'v/{yt(1)}_000001_000011.mp4', 0)],
    )
    k600 = k710.Source(
        'k600',
        ['abseiling', 'dyeing hair', 'acting in play', 'zumba'],
        [(f'b/{yt(2)}_000000_000010.mp4', 0), (f'b/{yt(4)}_000002_000012.mp4', 2)],
        [(f'w/{yt(5)}_000000_000010.mp4', 1)],
    )
    result = k710.build([k400, k600], {'dying hair': 'dyeing hair'})
    assert result.names == ['abseiling', 'acting in play', 'dyeing hair', 'zumba']
    assert result.maps == {'k400': [2, 0, 3], 'k600': [0, 2, 1, 3]}
    assert [y for _, y in result.train] == [2, 0, 1]  # yt(2) kept once, from K400
    assert [p for p, _ in result.val] == [
        f'v/{yt(3)}_000005_000015.mp4',
        f'w/{yt(5)}_000000_000010.mp4',
    ]
    s = result.summary
    assert s['train_duplicates'] == 1 and s['val_in_train_removed'] == 1
    assert s['renamed'] == {'dying hair': 'dyeing hair'}
    # The written files are what fine-tuning reads.
    for name, src in (('k400', k400), ('k600', k600)):
        d = tmp_path / name
        d.mkdir()
        (d / 'labels.txt').write_text('\n'.join(src.names) + '\n')
        for split in ('train', 'val'):
            (d / f'{split}.csv').write_text(''.join(f'{p} {y}\n' for p, y in getattr(src, split)))
    merge = tmp_path / 'merge.json'
    merge.write_text(json.dumps({'dying hair': 'dyeing hair'}))
    out = tmp_path / 'out'
    k710_tool.main(
        [
            '--k400',
            str(tmp_path / 'k400'),
            '--k600',
            str(tmp_path / 'k600'),
            '--merge',
            str(merge),
            '--output',
            str(out),
        ]
    )
    assert json.loads((out / 'label_710to400.json').read_text()) == [2, 0, 3]
    assert (out / 'label_map_k710.txt').read_text().split('\n')[:4] == result.names
    assert len((out / 'train.csv').read_text().splitlines()) == 3
    assert k710.youtube_id('x/--07WQ2iBlw_000001_000011.mp4') == '--07WQ2iBlw'
