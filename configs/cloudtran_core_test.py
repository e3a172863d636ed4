"""Validation, test and sampling configuration of CloudTran core.

  MODEL_SIZE=128 python sample.py --config ./configs/cloudtran_core_test.py --mode=sample_test --logdir $LOGDIR

Append `:tiny` to the config path for the small CPU variant used by the tests
and `make demo` (`--config ./configs/cloudtran_core_test.py:tiny`), `:small` for the
`make reproduce-small` recipe.
"""

from configs import common


def get_config(variant=''):
  return common.build('cloudtran_core', 'testset', variant)
