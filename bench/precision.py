"""Is `config.precision='bfloat16'` faster on this machine? The tf.matmul peak
in float32 and in bfloat16, side by side in one run.

  .venv/bin/python bench/precision.py [--size 4096] [--repeats 3]

Prints the GFLOP/s of each, bfloat16's speed-up over float32 and the CPU's
bfloat16 instruction flags (from /proc/cpuinfo, where there is one). Where
the speed-up is below 1 (a CPU without bfloat16 instructions, such as
AVX512_BF16 or AMX: TensorFlow then converts to float32 around every
product), keep float32 (`config.precision='auto'` chooses it there, from
the CPU flags: `auto_chooses`); on GPUs and TPUs, and CPUs with those
instructions, bfloat16 products run about twice as fast.
"""

import argparse
import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils import cpu_flags  # pylint: disable=g-import-not-at-top

import measure  # pylint: disable=g-import-not-at-top
from models import precision  # pylint: disable=g-import-not-at-top


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--size', type=int, default=4096,
                      help='side of the square matrices')
  parser.add_argument('--repeats', type=int, default=3,
                      help='timed products per dtype (the best counts)')
  args = parser.parse_args(argv)
  if args.size < 1 or args.repeats < 1:
    parser.error('--size and --repeats must be at least 1')
  flags = cpu_flags.read()
  peaks = {dtype: measure.matmul_peak(args.size, args.repeats, dtype)
           for dtype in ('float32', 'bfloat16')}
  speedup = peaks['bfloat16']['gflops'] / peaks['float32']['gflops']
  print(json.dumps({'matmul_peak': peaks,
                    'bfloat16_speedup': round(speedup, 2),
                    'cpu_bf16_flags': cpu_flags.bf16_compute(flags),
                    'auto_chooses': precision.choose_auto(False, flags)[0],
                    'advice': ('bfloat16 is faster here' if speedup > 1.1
                               else 'keep float32 here')}, indent=1))


if __name__ == '__main__':
  main()
