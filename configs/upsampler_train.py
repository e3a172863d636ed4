"""Training configuration of the CloudTran upsampler.

  MODEL_SIZE=512 python run.py --config ./configs/upsampler_train.py --mode=train --logdir $LOGDIR

Append `:tiny` to the config path for the small CPU variant used by the tests
and `make demo` (`--config ./configs/upsampler_train.py:tiny`), `:small` for the
`make reproduce-small` recipe.
"""

from configs import common


def get_config(variant=''):
  return common.build('upsampler', 'trainset', variant)
