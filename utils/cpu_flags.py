"""The CPU's instruction-set flags, as Linux lists them in /proc/cpuinfo."""

CPUINFO = '/proc/cpuinfo'
# Flags of x86 CPUs that compute bfloat16 products natively (AVX-512 BF16,
# AMX); without them TensorFlow converts to float32 around every product.
BF16_COMPUTE = ('avx512_bf16', 'amx_bf16')


def parse(text):
  """The flags of the first processor in cpuinfo `text`: its `flags` line
  (x86) or `Features` line (ARM); empty when it has neither."""
  for line in text.splitlines():
    key, _, value = line.partition(':')
    if key.strip() in ('flags', 'Features'):
      return set(value.split())
  return set()


def read(path=CPUINFO):
  """The flags of this machine's CPU, or None where `path` cannot be read
  (not Linux)."""
  try:
    with open(path) as f:
      return parse(f.read())
  except OSError:
    return None


def bf16_compute(flags):
  """The bfloat16 compute flags among `flags` (None counts as none), sorted."""
  return sorted(set(flags or ()) & set(BF16_COMPUTE))
