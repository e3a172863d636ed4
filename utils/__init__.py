"""Leaf helpers shared by every floor; nothing here imports the project.

Importing the package sets one process default before TensorFlow allocates
anything (every project module imports utils before its first op):
TensorFlow's pooled (BFC) CPU allocator. TensorFlow's default CPU allocator
hands large buffers back to the kernel and faults them in again for every
op's output; on a 2-core VM that was half of a training step's CPU time
(kernel time in page faults), and the pooled allocator halves the step
(README, Benchmarks). `TF_CPU_ALLOCATOR_USE_BFC=false` in the environment
keeps TensorFlow's default.
"""

import os

os.environ.setdefault('TF_CPU_ALLOCATOR_USE_BFC', 'true')
