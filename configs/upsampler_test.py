"""Validation, test and sampling configuration of the CloudTran upsampler.

  MODEL_SIZE=512 python sample.py --config ./configs/upsampler_test.py --mode=sample_test --logdir $LOGDIR

Append `:tiny` to the config path for the small CPU variant used by the tests
and `make demo` (`--config ./configs/upsampler_test.py:tiny`), `:small` for the
`make reproduce-small` recipe.
"""

from configs import common


def get_config(variant=''):
  return common.build('upsampler', 'testset', variant)
