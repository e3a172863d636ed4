"""tools/summary.py: the printed description of a pipeline."""

from tools import summary


def test_summary_describes_keys_and_examples(tiny_config):
  config = tiny_config('cloudtran_core_train')
  text = summary.summarize(config, 'train', 1)
  for key in ('targets_slice_16', 'channel_index', 'mask', 'coverage'):
    assert f'  {key} ' in text
  assert text.count('example ') == config.batch_size
  assert 'channel ' in text and 'cloud' in text
